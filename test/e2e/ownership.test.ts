// Ownership end to end, with the built CLI in real processes: the upgrade of a real 0.1.0 ledger,
// no ERROR from normal operation, takeover after success, a takeover bounded by --wait-timeout, and
// an exit code that always agrees with the ledger.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { ROOT, runCli, scratchDir, startCli, type CliRun } from "../support/cli.js";
import { waitFor, waitForOutput } from "../support/wait.js";

const freshDb = useFreshDatabases("ownership");
const LEDGER_010 = readFileSync(join(ROOT, "test/fixtures/ledger-0.1.0.sql"), "utf8");

/** A command that appends a line to a file when it runs, so a test can count executions. */
function marking(dir: string): { args: string[]; count: () => number } {
  const file = join(dir, "ran");
  return {
    args: ["sh", "-c", `echo ran >> ${file}`],
    count: () => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).length : 0),
  };
}

/**
 * A ledger (made by a first run) whose lock is owned by a stale attempt of "ghost" for release r1: its
 * lease expired a minute ago, but a session of its command (its PGAPPNAME) is still connected.
 */
async function staleOwnerStillConnected(
  db: TestDatabase,
): Promise<{ stale: { id: string }; orphan: pg.Client }> {
  const setup = await runCli(["run", "--release-id", "setup", "--", "true"], {
    env: { DATABASE_URL: db.url },
  });
  expect(setup.exitCode, setup.stderr).toBe(0);
  const [stale] = await db.query<{ id: string }>(
    `INSERT INTO release_orchestrator.attempts (release_id, task, lock_name, app, host, pid, role, backend_pid, status, lease_ms, heartbeat_at)
     VALUES ('r1', 'migrate', 'release-orchestrator', 'ghost', 'h', 1, 'auto', 1, 'running', 1000, clock_timestamp() - interval '1 minute')
     RETURNING id`,
  );
  if (stale === undefined) throw new Error("the stale attempt was not inserted");
  const orphan = new pg.Client({
    connectionString: db.url,
    application_name: `release-orchestrator attempt ${stale.id}`,
  });
  await orphan.connect();
  return { stale, orphan };
}

const statuses = (db: TestDatabase) =>
  db.query<{ id: string; release_id: string | null; status: string }>(
    "SELECT id, release_id, status FROM release_orchestrator.attempts ORDER BY id",
  );

describe("ownership", () => {
  it("upgrades a real 0.1.0 ledger in place: version 2, constraints, duplicates marked, history kept", async () => {
    const db = await freshDb("upgrade");
    await db.query(LEDGER_010);
    // Through a transaction-mode pooler 0.1.0 recorded several successes for one release (measured: up to 4).
    await db.query(
      `INSERT INTO release_orchestrator.attempts (release_id, task, lock_name, app, host, pid, role, backend_pid, status, lease_ms, finished_at)
       SELECT '6d0d0d1', 'migrate', 'release-orchestrator', 'app-' || g, 'h', g, 'auto', g, 'succeeded', 3000, clock_timestamp()
         FROM generate_series(2, 4) g`,
    );
    const before = await statuses(db);
    const dir = scratchDir();
    const command = marking(dir);
    const done = await runCli(["run", "--release-id", "6d0d0d1", "--", ...command.args], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
      cwd: dir,
    });
    expect(done.exitCode, done.stderr).toBe(0);
    expect(done.stderr).toMatch(
      /migrate already succeeded for release 6d0d0d1 \(attempt #6 by app-\d\); nothing to do/,
    );
    expect(command.count()).toBe(0);
    const [meta] = await db.query<{ value: string }>(
      "SELECT value FROM release_orchestrator.meta WHERE key = 'ledger_version'",
    );
    expect(meta?.value).toBe("2");
    const after = await statuses(db);
    expect(after).toHaveLength(before.length);
    // The first success per release stays; the later ones are marked duplicate; the rest is as it was.
    const dupes = after.filter((a) => a.status === "duplicate").map((a) => a.release_id);
    expect(dupes).toEqual(["6d0d0d1", "6d0d0d1", "6d0d0d1"]);
    expect(after.filter((a) => a.release_id === "6d0d0d1" && a.status === "succeeded")).toHaveLength(1);
    expect(after.find((a) => a.release_id === "8f8f8f8")?.status).toBe("running");
    // The constraints hold on the upgraded table.
    await expect(
      db.query(
        "UPDATE release_orchestrator.attempts SET status = 'succeeded' WHERE release_id = '6d0d0d1' AND status = 'duplicate'",
      ),
    ).rejects.toMatchObject({ code: "23505" });
    // The attempt 0.1.0 left running (its leader was SIGKILLed long ago) is taken over, then run once.
    const taken = await runCli(["run", "--release-id", "8f8f8f8", "--", ...command.args], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
      cwd: dir,
    });
    expect(taken.exitCode, taken.stderr).toBe(0);
    expect(taken.stderr).toMatch(/taking over: attempt #10 by s-app/);
    expect(command.count()).toBe(1);
    expect((await statuses(db)).filter((a) => a.release_id === "8f8f8f8").map((a) => a.status)).toEqual([
      "abandoned",
      "succeeded",
    ]);
    // And history still reads every row.
    const history = await runCli(["history", "--limit", "50", "--json"], { env: { DATABASE_URL: db.url } });
    expect((JSON.parse(history.stdout) as unknown[]).length).toBe(after.length + 1);
  });

  it("normal operation raises no ERROR on the server: no transaction in the database is rolled back", async () => {
    const db = await freshDb("no-errors");
    const rollbacks = async () => {
      await db.query("SELECT pg_stat_clear_snapshot()");
      const [row] = await db.query<{ n: string }>(
        "SELECT xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()",
      );
      return Number(row?.n);
    };
    const before = await rollbacks();
    const env = { DATABASE_URL: db.url };
    // First runs race to create the ledger; later ones find it done; followers wait, skip, time out.
    const first = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) =>
          startCli(["run", "--release-id", "e1", "--", "sleep", "0.3"], {
            env: { ...env, RELEASE_APP_NAME: `a${i}` },
          }).done,
      ),
    );
    const later: CliRun[] = await Promise.all([
      runCli(["run", "--release-id", "e1", "--", "true"], { env }),
      runCli(["run", "--role", "follower", "--release-id", "e1"], { env }),
      runCli(["run", "--role", "follower", "--follower-mode", "skip", "--release-id", "e2"], { env }),
      runCli(["run", "--role", "follower", "--release-id", "e3", "--wait-timeout", "1s"], { env }),
      runCli(["run", "--", "true"], { env }),
      runCli(["status"], { env }),
      runCli(["history"], { env }),
      runCli(["doctor", "--release-id", "e1"], { env }),
    ]);
    expect([...first, ...later].map((r) => r.exitCode)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 75, 0, 0, 0, 0]);
    // Every process has exited, so its statistics are flushed; allow the collector a moment.
    const after = await waitFor("statistics", async () => {
      const n = await rollbacks();
      return n >= before ? n : undefined;
    });
    expect(after - before).toBe(0);
  });

  it("takeover after success: an attempt that succeeds while a taker waits on it is never run again", async () => {
    const db = await freshDb("after-success");
    const env = { DATABASE_URL: db.url };
    const { stale, orphan } = await staleOwnerStillConnected(db);
    try {
      const dir = scratchDir();
      const command = marking(dir);
      const taker = startCli(["run", "--release-id", "r1", "--", ...command.args], {
        env: { ...env, RELEASE_APP_NAME: "taker" },
        cwd: dir,
      });
      // The taker is waiting out the orphan session (observable in its output)...
      let stderr = "";
      taker.process.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      await waitFor("the taker to wait for the orphan", () =>
        Promise.resolve(/its command is still connected/.test(stderr) ? true : undefined),
      );
      // ...when the old leader records success (as it would on a fresh connection), then its session goes.
      await db.query(
        "UPDATE release_orchestrator.attempts SET status = 'succeeded', exit_code = 0, finished_at = clock_timestamp() WHERE id = $1",
        [stale.id],
      );
      await orphan.end();
      const run = await taker.done;
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/attempt #\d+ by ghost .* succeeded; done after waiting/);
      expect(command.count()).toBe(0);
      expect((await statuses(db)).map((a) => a.status)).toEqual(["succeeded", "succeeded"]);
    } finally {
      await orphan.end().catch(() => {});
    }
  });

  it("--wait-timeout bounds a takeover: an orphaned command's session that never leaves ends in 75, said once", async () => {
    const db = await freshDb("takeover-timeout");
    const env = { DATABASE_URL: db.url };
    const { orphan } = await staleOwnerStillConnected(db);
    try {
      const run = await runCli(["run", "--release-id", "r1", "--wait-timeout", "3s", "--", "true"], {
        env: { ...env, RELEASE_APP_NAME: "taker" },
      });
      expect(run.exitCode, run.stderr).toBe(75);
      expect(run.stderr).toMatch(/timed out after \d+ s waiting for attempt #\d+ by ghost/);
      expect(run.stderr.match(/its command is still connected/g)).toHaveLength(1);
      expect((await statuses(db)).map((a) => a.status)).toEqual(["succeeded", "running"]);
    } finally {
      await orphan.end();
    }
  });

  it("the exit code and the ledger agree: a command that handles a forwarded SIGINT and exits 0 succeeded", async () => {
    const db = await freshDb("trap");
    const leader = startCli(
      [
        "run",
        "--release-id",
        "t1",
        "--",
        "sh",
        "-c",
        "trap 'echo handled; exit 0' INT; echo trapping; while :; do sleep 0.1; done",
      ],
      { env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" } },
    );
    // The command handles SIGINT once its trap is set: signal it then, not when its row appears.
    await waitForOutput(leader.process, "stdout", /trapping/);
    expect((await statuses(db)).map((a) => a.status)).toEqual(["running"]);
    leader.process.kill("SIGINT");
    const run = await leader.done;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain("handled");
    expect(run.stderr).toMatch(/the command handled SIGINT and exited 0/);
    expect((await statuses(db)).map((a) => a.status)).toEqual(["succeeded"]);
  });
});
