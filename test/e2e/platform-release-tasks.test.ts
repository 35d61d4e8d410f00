// scripts/release-tasks.sh, run for real against a real database: RUN_MIGRATIONS=true runs this
// repository's migrations (once per release); RUN_MIGRATIONS=false waits for that leader's outcome and
// exits with it; with RELEASE_FOLLOWER_MODE=skip it exits 0 at once, as the old recipe did.

import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { ROOT, cleanEnv, scratchDir } from "../support/cli.js";
import { MIGRATIONS, appEnv, readLedger, readMigrated, waitForStderr } from "./platform-support.js";

const SCRIPT = `${ROOT}/scripts/release-tasks.sh`;

/** Runs the script as a Procfile would (from anywhere: it changes to the app root itself). */
function releaseTasks(env: Record<string, string | undefined>) {
  return execa(SCRIPT, [], {
    cwd: scratchDir(),
    env: cleanEnv(appEnv(env)),
    extendEnv: false,
    reject: false,
    all: true,
    stdin: "ignore",
    timeout: 60_000,
  });
}

describe("scripts/release-tasks.sh", () => {
  const db = useTestDatabase("platform-release-tasks");

  it("RUN_MIGRATIONS=false waits for the RUN_MIGRATIONS=true app, which runs the migrations; both exit 0", async () => {
    const common = { DATABASE_URL: db().url, RELEASE_ID: "tasks-1" };
    const admin = releaseTasks({ ...common, RUN_MIGRATIONS: "false", RELEASE_APP_NAME: "s-admin" });
    // The follower is there first and has nothing to wait on yet: it must wait, not skip or fail.
    await waitForStderr(admin, /s-admin: follower; waiting/);
    const app = releaseTasks({ ...common, RUN_MIGRATIONS: "true", RELEASE_APP_NAME: "s-app" });
    const [appRun, adminRun] = await Promise.all([app, admin]);
    expect([appRun.exitCode, adminRun.exitCode], `${appRun.all}\n---\n${adminRun.all}`).toEqual([0, 0]);
    expect(appRun.all).toMatch(/s-app: leader; running migrate for release tasks-1/);
    expect(appRun.all).toMatch(/Migrations complete!/);
    expect(adminRun.all).toMatch(/s-admin: attempt #\d+ by s-app .* succeeded; done after waiting/);
    expect(adminRun.all).not.toMatch(/Migrating files/);

    const ledger = await readLedger(db(), "tasks-1");
    expect(ledger.attempts.map((a) => [a.app, a.status])).toEqual([["s-app", "succeeded"]]);
    expect(ledger.followers).toEqual([
      { app: "s-admin", outcome: "succeeded", attempt_id: ledger.attempts[0]?.id },
    ]);
    const migrated = await readMigrated(db());
    expect(migrated.applied).toEqual(MIGRATIONS);
    expect(migrated.backfillEvents).toBe(migrated.orders);
  });

  it("RUN_MIGRATIONS=true again for the same release: already done, nothing runs", async () => {
    const again = await releaseTasks({
      DATABASE_URL: db().url,
      RELEASE_ID: "tasks-1",
      RUN_MIGRATIONS: "true",
      RELEASE_APP_NAME: "s-app",
    });
    expect(again.exitCode, again.all).toBe(0);
    expect(again.all).toMatch(/migrate already succeeded for release tasks-1 .*nothing to do/);
    expect(again.all).not.toMatch(/node-pg-migrate up/);
    expect((await readLedger(db(), "tasks-1")).attempts).toHaveLength(1);
  });

  it("RUN_MIGRATIONS=false with RELEASE_FOLLOWER_MODE=skip exits 0 at once, with a warning, and runs nothing", async () => {
    const skipped = await releaseTasks({
      DATABASE_URL: db().url,
      RELEASE_ID: "tasks-2",
      RUN_MIGRATIONS: "false",
      RELEASE_FOLLOWER_MODE: "skip",
      RELEASE_APP_NAME: "s-admin",
    });
    expect(skipped.exitCode, skipped.all).toBe(0);
    expect(skipped.all).toMatch(/warning: follower in skip mode/);
    expect((await readLedger(db(), "tasks-2")).attempts).toEqual([]);
  });

  it("RUN_MIGRATIONS=false with no leader waits, then fails the release with exit 75 (it does not skip)", async () => {
    const waited = await releaseTasks({
      DATABASE_URL: db().url,
      RELEASE_ID: "tasks-3",
      RUN_MIGRATIONS: "false",
      RELEASE_WAIT_TIMEOUT: "1s",
      RELEASE_APP_NAME: "s-admin",
    });
    expect(waited.exitCode, waited.all).toBe(75);
    expect((await readLedger(db(), "tasks-3")).attempts).toEqual([]);
  });
});
