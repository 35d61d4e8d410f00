// `npm run release` (demo/dist/release.js, which the npm script runs after building): with no
// database configured it starts an embedded PostgreSQL that keeps its data between runs, so the first
// run says "ran" and the second "already done"; it never prints the password, stops the server when it
// ends (on SIGINT too, after the orchestrator recorded the interruption), and uses DATABASE_URL when set.

import { chmodSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { ROOT, cleanEnv, scratchDir } from "../support/cli.js";
import { MIGRATIONS, appEnv, readMigrated, waitForStderr } from "./platform-support.js";

const RELEASE = join(ROOT, "demo/dist/release.js");

function release(env: Record<string, string | undefined>, args: string[] = []) {
  return execa(process.execPath, [RELEASE, ...args], {
    cwd: ROOT,
    env: cleanEnv(appEnv(env)),
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: 90_000,
  });
}

/** A fresh place for the embedded server's data; traversable by its OS user when the tests run as root. */
function localDir(): string {
  const dir = scratchDir();
  chmodSync(dir, 0o755);
  return join(dir, "local");
}

describe("npm run release, with no database configured", () => {
  const dir = localDir();
  const pgdata = join(dir, "pgdata");

  it("first run: starts an embedded PostgreSQL, says where it is, runs the migrations, stops the server", async () => {
    const first = await release({ RELEASE_LOCAL_DIR: dir });
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(
      /\[release\] local: no DATABASE_URL: created an embedded PostgreSQL \d+\.\d+ at postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\n/,
    );
    expect(first.stderr).toContain(`its data is in ${pgdata}`);
    expect(first.stderr).toContain(`the password is in ${join(dir, "password")}`);
    expect(first.stderr).toMatch(
      /auto; running migrate for release fp-[0-9a-f]{16} \(attempt #1\): npm run migrate/,
    );
    expect(first.stdout).toMatch(/Migrations complete!/);
    expect(first.stderr).toMatch(/\[release\] local: ran migrate: attempt #1 succeeded/);
    expect(first.stderr).toMatch(/stopped the embedded PostgreSQL/);
    expect(existsSync(join(pgdata, "postmaster.pid")), "the server is still running").toBe(false);
  });

  it("second run: the same data, and the release is already done; nothing runs", async () => {
    const second = await release({ RELEASE_LOCAL_DIR: dir });
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/no DATABASE_URL: started an embedded PostgreSQL/);
    expect(second.stderr).toMatch(
      /migrate already succeeded for release fp-[0-9a-f]{16} \(attempt #1 by .+\); nothing to do\./,
    );
    expect(second.stderr).toMatch(
      /\[release\] local: already done: migrate succeeded earlier for this release \(attempt #1 by .+\); nothing ran\./,
    );
    expect(second.stdout).not.toMatch(/Migrating files/);
    expect(existsSync(join(pgdata, "postmaster.pid"))).toBe(false);
  });

  it("Ctrl-C: the orchestrator records the interruption, then the server is stopped; exit 130", async () => {
    const running = release({ RELEASE_LOCAL_DIR: dir, RELEASE_ID: "ctrl-c", RELEASE_COMMAND: "sleep 30" });
    await waitForStderr(running, /running migrate for release ctrl-c/);
    running.kill("SIGINT");
    const result = await running;
    expect(result.exitCode, result.stderr).toBe(130);
    expect(result.stderr).toMatch(/attempt #2 recorded as interrupted/);
    expect(result.stderr).toMatch(/\[release\] local: ran migrate: attempt #2 ended interrupted/);
    expect(existsSync(join(pgdata, "postmaster.pid")), "the server is still running").toBe(false);
  });

  it("never prints the database password", async () => {
    const password = readFileSync(join(dir, "password"), "utf8").trim();
    expect(password.length).toBeGreaterThan(10);
    const run = await release({ RELEASE_LOCAL_DIR: dir, RELEASE_VERBOSE: "true" });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(`${run.stdout}${run.stderr}`).not.toContain(password);
    expect(`${run.stdout}${run.stderr}`).not.toContain(encodeURIComponent(password));
  });
});

describe("npm run release, with DATABASE_URL", () => {
  const db = useTestDatabase("platform-release");

  it("uses that database, starts no embedded server, and runs the migrations there", async () => {
    const dir = localDir();
    const run = await release({ DATABASE_URL: db().url, RELEASE_LOCAL_DIR: dir });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/embedded/);
    expect(run.stderr).toMatch(/\[release\] local: ran migrate: attempt #1 succeeded/);
    expect(existsSync(dir)).toBe(false);
    const migrated = await readMigrated(db());
    expect(migrated.applied).toEqual(MIGRATIONS);
    expect(migrated.backfillEvents).toBe(migrated.orders);
  });
});
