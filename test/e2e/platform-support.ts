// Helpers of the platform tests: this repository's release command run for real (its migrations,
// from the repository root), and what the ledger and the migrated data say afterwards.

import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestDatabase } from "../harness/database.js";
import { ROOT, scratchDir } from "../support/cli.js";

/** This repository's migrations, by name, as node-pg-migrate records them. */
export const MIGRATIONS = readdirSync(join(ROOT, "migrations"))
  .filter((name) => /^\d+_.+\.js$/.test(name))
  .map((name) => name.replace(/\.js$/, ""))
  .sort();

/**
 * Environment for a process that runs in the repository root as a deployed app would: no developer
 * `.env` (a slug has none), no dotenv banner, no npm update notice.
 */
export function appEnv(extra: Record<string, string | undefined>): Record<string, string | undefined> {
  const noEnvFile = join(scratchDir(), "no.env");
  writeFileSync(noEnvFile, "");
  return {
    RELEASE_ENV_FILE: noEnvFile,
    DOTENV_CONFIG_QUIET: "true",
    NPM_CONFIG_UPDATE_NOTIFIER: "false",
    NPM_CONFIG_FUND: "false",
    ...extra,
  };
}

export interface LedgerView {
  attempts: { id: number; app: string; status: string }[];
  followers: { app: string; outcome: string; attempt_id: number | null }[];
}

export async function readLedger(db: TestDatabase, releaseId: string): Promise<LedgerView> {
  const attempts = await db.query<{ id: string; app: string; status: string }>(
    "SELECT id, app, status FROM release_orchestrator.attempts WHERE release_id = $1 AND task = 'migrate' ORDER BY id",
    [releaseId],
  );
  const followers = await db.query<{ app: string; outcome: string; attempt_id: string | null }>(
    "SELECT app, outcome, attempt_id FROM release_orchestrator.follower_outcomes WHERE release_id = $1 AND task = 'migrate' ORDER BY id",
    [releaseId],
  );
  return {
    attempts: attempts.map((a) => ({ ...a, id: Number(a.id) })),
    followers: followers.map((f) => ({
      ...f,
      attempt_id: f.attempt_id === null ? null : Number(f.attempt_id),
    })),
  };
}

/** What the migrations left: which ones node-pg-migrate recorded, and how often the backfill ran. */
export async function readMigrated(
  db: TestDatabase,
): Promise<{ applied: string[]; orders: number; backfillEvents: number }> {
  const applied = await db.query<{ name: string }>("SELECT name FROM pgmigrations ORDER BY id");
  const [counts] = await db.query<{ orders: number; events: number }>(
    "SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM order_events WHERE kind = 'status-backfilled') AS events",
  );
  return {
    applied: applied.map((r) => r.name),
    orders: counts?.orders ?? -1,
    backfillEvents: counts?.events ?? -1,
  };
}

// One copy of the helper, shared with the other e2e files.
export { waitForStderr } from "../support/wait.js";

/** A Python that can import Django and psycopg2: Debian's, where a version manager may shadow it. */
export function findDjangoPython(): string | undefined {
  for (const candidate of ["/usr/bin/python3", "python3"]) {
    try {
      execFileSync(candidate, ["-c", "import django, psycopg2"], { stdio: "ignore" });
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/**
 * A one-app Django project whose second migration is a data migration that takes a moment. Its PATH
 * is `inheritedPath` (default: this process's) behind the project's own bin directory.
 */
export function djangoProject(
  pythonPath: string,
  inheritedPath = process.env.PATH ?? "",
): { dir: string; path: string } {
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
  return { dir, path: `${bin}:${inheritedPath}` };
}
