// The README's Django recipe, tried for real (Debian's python3-django, which .ci/run installs): Django
// takes no lock, so two apps migrating at once both exit 0 and a data migration runs twice (the
// control); wrapped as the README says, it runs once and both apps still exit 0.

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useTestDatabase, type TestDatabase } from "../harness/database.js";
import { CLI, ROOT, cleanEnv, scratchDir } from "../support/cli.js";
import { requireTool } from "../support/tools.js";
import { appEnv } from "./platform-support.js";

const recipe = /^\| Django \| `npx release-orchestrator run -- (.+?)` \|/m.exec(
  readFileSync(join(ROOT, "README.md"), "utf8"),
)?.[1];

/** A one-app Django project whose second migration is a data migration that takes a moment. */
function djangoProject(pythonPath: string): { dir: string; path: string } {
  const dir = scratchDir();
  const bin = join(dir, "bin");
  mkdirSync(bin);
  // The recipe says `python`: make it this Python.
  symlinkSync(
    pythonPath.startsWith("/")
      ? pythonPath
      : execFileSync("sh", ["-c", `command -v ${pythonPath}`], { encoding: "utf8" }).trim(),
    join(bin, "python"),
  );
  writeFileSync(
    join(dir, "manage.py"),
    `import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
`,
  );
  writeFileSync(
    join(dir, "settings.py"),
    `import os, urllib.parse
_u = urllib.parse.urlparse(os.environ["DATABASE_URL"])
SECRET_KEY = "test"
USE_TZ = True
INSTALLED_APPS = ["shop"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": _u.path[1:], "USER": urllib.parse.unquote(_u.username or ""),
  "PASSWORD": urllib.parse.unquote(_u.password or ""), "HOST": _u.hostname, "PORT": _u.port}}
`,
  );
  mkdirSync(join(dir, "shop", "migrations"), { recursive: true });
  writeFileSync(join(dir, "shop", "__init__.py"), "");
  writeFileSync(join(dir, "shop", "migrations", "__init__.py"), "");
  writeFileSync(
    join(dir, "shop", "models.py"),
    `from django.db import models
class OrderEvent(models.Model):
    kind = models.TextField()
`,
  );
  writeFileSync(
    join(dir, "shop", "migrations", "0001_initial.py"),
    `from django.db import migrations, models
class Migration(migrations.Migration):
    initial = True
    operations = [migrations.CreateModel(name="OrderEvent", fields=[("id", models.AutoField(primary_key=True)), ("kind", models.TextField())])]
`,
  );
  writeFileSync(
    join(dir, "shop", "migrations", "0002_backfill.py"),
    `import time
from django.db import migrations
def backfill(apps, schema_editor):
    time.sleep(3)
    apps.get_model("shop", "OrderEvent").objects.create(kind="backfilled")
class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
`,
  );
  return { dir, path: `${bin}:${process.env.PATH ?? ""}` };
}

function run(
  file: string,
  args: string[],
  project: { dir: string; path: string },
  env: Record<string, string>,
) {
  return execa(file, args, {
    cwd: project.dir,
    env: { ...cleanEnv(appEnv(env)), PATH: project.path },
    extendEnv: false,
    reject: false,
    all: true,
    stdin: "ignore",
    timeout: 60_000,
  });
}

/** Applies the schema migration only, as an earlier release would have. */
async function earlierRelease(project: { dir: string; path: string }, db: TestDatabase): Promise<void> {
  const result = await run("python", ["manage.py", "migrate", "shop", "0001", "--noinput"], project, {
    DATABASE_URL: db.url,
  });
  expect(result.exitCode, result.all).toBe(0);
}

describe("README recipe: Django (python3-django)", () => {
  // A python3 that imports django and psycopg2 (Debian's, which .ci/run installs); else skipped, saying so.
  const python = requireTool("django").path;
  const controlDb = useTestDatabase("platform-django-control");
  const wrappedDb = useTestDatabase("platform-django-wrapped");

  it("control: two bare `python manage.py migrate` at once both exit 0, and the data migration runs twice", async () => {
    const project = djangoProject(python ?? "");
    await earlierRelease(project, controlDb());
    const runs = await Promise.all(
      ["s-app", "s-admin"].map(() =>
        run("python", ["manage.py", "migrate", "--noinput"], project, { DATABASE_URL: controlDb().url }),
      ),
    );
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.all).join("\n---\n"),
    ).toEqual([0, 0]);
    expect(await controlDb().query("SELECT count(*)::int AS n FROM shop_orderevent")).toEqual([{ n: 2 }]);
  });

  it("wrapped as the README says: the data migration runs once, both exit 0", async () => {
    expect(recipe).toBe("python manage.py migrate --noinput");
    const project = djangoProject(python ?? "");
    await earlierRelease(project, wrappedDb());
    const words = (recipe ?? "").split(" ");
    const runs = await Promise.all(
      ["s-app", "s-admin"].map((app) =>
        run(process.execPath, [CLI, "run", "--", ...words], project, {
          DATABASE_URL: wrappedDb().url,
          RELEASE_ID: "django-1",
          RELEASE_APP_NAME: app,
        }),
      ),
    );
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.all).join("\n---\n"),
    ).toEqual([0, 0]);
    expect(await wrappedDb().query("SELECT count(*)::int AS n FROM shop_orderevent")).toEqual([{ n: 1 }]);
    expect(
      runs
        .map((r) => r.all)
        .join("\n")
        .match(/Applying shop\.0002_backfill/g),
    ).toHaveLength(1);
  });
});
