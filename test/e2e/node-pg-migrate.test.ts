// A real wrapped tool: node-pg-migrate, which has its own fail-fast advisory lock. Bare, two concurrent
// `up` runs make one fail ("Another migration is already running"): that is the control. Under the
// orchestrator both exit 0 and each migration is applied once.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { ROOT, cleanEnv, scratchDir, startCli } from "../support/cli.js";

const NPM_BIN = join(ROOT, "node_modules/node-pg-migrate/bin/node-pg-migrate.js");

function migrationsDir(): string {
  const dir = scratchDir();
  // The migrations are CommonJS; say so, whatever package.json a parent directory may hold.
  writeFileSync(join(dir, "package.json"), '{ "type": "commonjs" }\n');
  mkdirSync(join(dir, "migrations"));
  writeFileSync(
    join(dir, "migrations", "1700000000000_create-widgets.js"),
    `exports.up = (pgm) => {
  pgm.createTable("widgets", { id: "id", name: { type: "text", notNull: true } });
  pgm.sql("SELECT pg_sleep(2)");
};
exports.down = (pgm) => pgm.dropTable("widgets");
`,
  );
  writeFileSync(
    join(dir, "migrations", "1700000000001_backfill-widgets.js"),
    `exports.up = (pgm) => pgm.sql("INSERT INTO widgets (name) VALUES ('backfilled')");
exports.down = () => {};
`,
  );
  return dir;
}

describe("wrapping node-pg-migrate", () => {
  const controlDb = useTestDatabase("npm-control");
  const wrappedDb = useTestDatabase("npm-wrapped");

  it("control: two bare concurrent `node-pg-migrate up` runs, one of them fails", async () => {
    const dir = migrationsDir();
    const runs = await Promise.all(
      [1, 2].map(() =>
        execa(process.execPath, [NPM_BIN, "up", "-m", "migrations"], {
          cwd: dir,
          env: cleanEnv({ DATABASE_URL: controlDb().url }),
          extendEnv: false,
          reject: false,
          all: true,
        }),
      ),
    );
    const codes = runs.map((r) => r.exitCode);
    expect(
      codes.filter((c) => c !== 0).length,
      runs.map((r) => r.all).join("\n---\n"),
    ).toBeGreaterThanOrEqual(1);
    expect(runs.map((r) => r.all).join("\n")).toMatch(/Another migration is already running/);
  });

  it("under the orchestrator: both exit 0 and each migration is applied once", async () => {
    const dir = migrationsDir();
    const started = ["s-app", "s-admin"].map((app) =>
      startCli(["run", "--release-id", "npm-1", "--", process.execPath, NPM_BIN, "up", "-m", "migrations"], {
        cwd: dir,
        env: { DATABASE_URL: wrappedDb().url, RELEASE_APP_NAME: app },
      }),
    );
    const runs = await Promise.all(started.map((s) => s.done));
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.stderr).join("\n---\n"),
    ).toEqual([0, 0]);
    const applied = await wrappedDb().query<{ name: string }>("SELECT name FROM pgmigrations ORDER BY id");
    expect(applied.map((r) => r.name)).toEqual([
      "1700000000000_create-widgets",
      "1700000000001_backfill-widgets",
    ]);
    expect(await wrappedDb().query("SELECT name FROM widgets")).toEqual([{ name: "backfilled" }]);
    expect(runs.map((r) => r.stderr).join("\n")).not.toMatch(/Another migration is already running/);
  });
});
