// PostgreSQL restarts (fast shutdown: every session cut) while followers wait and while a leader runs.
// Waiters reconnect and finish with the right outcome; the leader follows the lost-lock rules (77).

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { ROOT, sleep, startCli } from "../support/cli.js";
import { WAITING, waitForStderr } from "../support/wait.js";

const HOLD = join(ROOT, "test/fixtures/hold.mjs");
let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres({ forceKind: "local" });
}, 120_000);
afterAll(async () => {
  await server?.stop();
});
const freshDb = useFreshDatabases("restart", () => ({ adminUrl: server.adminUrl }));

/** Waits until every named app has a session open (it is waiting), so the restart really cuts them. */
async function connected(db: TestDatabase, apps: string[], ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const rows = await db
      .query<{ name: string }>(
        "SELECT application_name AS name FROM pg_stat_activity WHERE datname = current_database()",
      )
      .catch(() => [] as { name: string }[]);
    if (apps.every((app) => rows.some((r) => r.name.startsWith(`release-orchestrator ${app} `)))) return;
    await sleep(50);
  }
  throw new Error(`${apps.join(", ")} never connected`);
}

async function restart() {
  if (server.restart === undefined) throw new Error("this server kind cannot restart");
  await server.restart(1000);
}

async function started(db: TestDatabase, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const rows = await db.query("SELECT 1 FROM runs").catch(() => []);
    if (rows.length > 0) return;
    await sleep(50);
  }
  throw new Error("the command never started");
}

function contender(db: TestDatabase, app: string, args: string[], env: Record<string, string> = {}) {
  return startCli(
    ["run", "--kill-grace", "1s", "--release-id", "rs", ...args, "--", process.execPath, HOLD],
    {
      // The command survives its own session's loss in the restart: what is tested is that the leader
      // stops it (77), not the race between that stop and the command crashing by itself first (which
      // records the command's own exit code, as a command that ended by itself always is).
      env: {
        DATABASE_URL: db.url,
        RELEASE_APP_NAME: app,
        SLEEP_MS: "300",
        SURVIVE_CONNECTION_LOSS: "1",
        ...env,
      },
    },
  );
}

describe("PostgreSQL restarts", () => {
  it.runIf(process.env.TEST_DATABASE_URL === undefined)(
    "while followers wait for a leader that has not started: they reconnect, then succeed with it",
    async () => {
      const db = await freshDb("followers");
      const followers = ["f1", "f2"].map((app) => contender(db, app, ["--role", "follower"]));
      await connected(db, ["f1", "f2"]);
      // Waiting means having read the ledger, not only connected: a restart in between would be a first read.
      await Promise.all(followers.map((f) => waitForStderr(f.process, WAITING)));
      await restart();
      const leader = contender(db, "lead", ["--role", "leader"]);
      const runs = await Promise.all([leader, ...followers].map((s) => s.done));
      expect(
        runs.map((r) => r.exitCode),
        runs.map((r) => r.stderr).join("\n---\n"),
      ).toEqual([0, 0, 0]);
      for (const f of runs.slice(1))
        expect(f.stderr).toMatch(/lost the database connection while waiting .*; reconnecting/);
      expect(await db.query("SELECT app FROM runs")).toEqual([{ app: "lead" }]);
    },
    120_000,
  );

  it.runIf(process.env.TEST_DATABASE_URL === undefined)(
    "while a leader runs and followers wait: the leader stops its command and exits 77, followers report it (76)",
    async () => {
      const db = await freshDb("leader");
      const leader = contender(db, "lead", ["--role", "leader"], { SLEEP_MS: "30000" });
      await started(db);
      const followers = ["f1", "f2"].map((app) => contender(db, app, ["--role", "follower"]));
      await connected(db, ["f1", "f2"]);
      // Waiting means having read the ledger, not only connected: a restart in between would be a first read.
      await Promise.all(followers.map((f) => waitForStderr(f.process, WAITING)));
      await restart();
      const runs = await Promise.all([leader, ...followers].map((s) => s.done));
      expect(
        runs.map((r) => r.exitCode),
        runs.map((r) => r.stderr).join("\n---\n"),
      ).toEqual([77, 76, 76]);
      expect(runs[0]!.stderr).toMatch(/ownership was lost: the lock session/);
    },
    120_000,
  );

  it.runIf(process.env.TEST_DATABASE_URL === undefined)(
    "while a leader runs and auto contenders wait: one takes over after the first command is dead; all others exit 0",
    async () => {
      const db = await freshDb("auto");
      const first = contender(db, "a0", [], { SLEEP_MS: "30000" });
      await started(db);
      const others = ["a1", "a2"].map((app) => contender(db, app, []));
      await connected(db, ["a1", "a2"]);
      await Promise.all(others.map((f) => waitForStderr(f.process, WAITING)));
      await restart();
      const runs = await Promise.all([first, ...others].map((s) => s.done));
      expect(
        runs.map((r) => r.exitCode),
        runs.map((r) => r.stderr).join("\n---\n"),
      ).toEqual([77, 0, 0]);
      const rows = await db.query<{
        app: string;
        started_at: Date;
        ended_at: Date | null;
        how: string | null;
      }>("SELECT app, started_at, ended_at, how FROM runs ORDER BY id");
      expect(rows).toHaveLength(2);
      expect(rows[1]!.how).toBe("done");
      // The first command lost its own connection in the restart: it may not have recorded its end, but
      // the takeover waited out its lease, so the second started after the first was stopped.
      const attempts = await db.query<{ status: string }>(
        "SELECT status FROM release_orchestrator.attempts ORDER BY id",
      );
      expect(attempts.map((a) => a.status)).toEqual([
        expect.stringMatching(/^(lost|abandoned)$/),
        "succeeded",
      ]);
    },
    120_000,
  );
});
