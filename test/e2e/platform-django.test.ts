// The Django recipe of docs/recipes.md, tried for real (Debian's python3-django, which .ci/run installs):
// Django takes no lock, so two apps migrating at once both exit 0 and a data migration runs twice (the
// control); wrapped as the recipe says, it runs once and both apps still exit 0.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useFreshDatabases, useTestDatabase, type TestDatabase } from "../harness/database.js";
import { CLI_KINDS, ROOT, cleanEnv, cliCommand, pathWithoutNode } from "../support/cli.js";
import { requireTool } from "../support/tools.js";
import { appEnv, djangoProject } from "./platform-support.js";

const recipe = /^\| Django \| `release-orchestrator run -- (.+?)` \|/m.exec(
  readFileSync(join(ROOT, "docs/recipes.md"), "utf8"),
)?.[1];

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

describe("docs/recipes.md recipe: Django (python3-django)", () => {
  // A python3 that imports django and psycopg2 (Debian's, which .ci/run installs); else skipped, saying so.
  const python = requireTool("django").path;
  const controlDb = useTestDatabase("platform-django-control");
  const freshDb = useFreshDatabases("platform-django");

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

  // The Python image of the Kubernetes recipe has no Node: the binary runs there with none on PATH.
  it.each(CLI_KINDS)(
    "wrapped as the recipe says (%s): the data migration runs once, both exit 0",
    async (cli) => {
      expect(recipe).toBe("python manage.py migrate --noinput");
      const db = await freshDb(`wrapped-${cli}`);
      const project = djangoProject(python ?? "", cli === "binary" ? pathWithoutNode() : undefined);
      await earlierRelease(project, db);
      const words = (recipe ?? "").split(" ");
      const tool = cliCommand(cli);
      const runs = await Promise.all(
        ["s-app", "s-admin"].map((app) =>
          run(tool.file, [...tool.args, "run", "--", ...words], project, {
            DATABASE_URL: db.url,
            RELEASE_ID: "django-1",
            RELEASE_APP_NAME: app,
          }),
        ),
      );
      expect(
        runs.map((r) => r.exitCode),
        runs.map((r) => r.all).join("\n---\n"),
      ).toEqual([0, 0]);
      expect(await db.query("SELECT count(*)::int AS n FROM shop_orderevent")).toEqual([{ n: 1 }]);
      expect(
        runs
          .map((r) => r.all)
          .join("\n")
          .match(/Applying shop\.0002_backfill/g),
      ).toHaveLength(1);
    },
  );
});
