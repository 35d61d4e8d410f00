// The ledger and its guarantees, driven directly against PostgreSQL: clients racing to claim, the
// constraints that reject a second running or succeeded attempt, fencing, takeover after success,
// the lease by the database clock, and the session proof.

import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.js";
import { ReleaseError } from "../../src/core/errors.js";
import {
  abandon,
  attachLock,
  claim,
  finish,
  readState,
  renew,
  type LedgerState,
  type NewAttempt,
} from "../../src/db/ledger/attempts.js";
import { readPhases, readPhasesIfRecorded, recordPlan } from "../../src/db/ledger/plans.js";
import { ensureLedger, readVersion } from "../../src/db/ledger/schema.js";
import { followerOutcome, followerWaited, ledgerOf, WAITER_GONE_MS } from "../../src/db/ledger/sql.js";
import { beatWaiting, recordFollowerOutcome, startWaiting } from "../../src/db/ledger/waiters.js";
import { provesOwnSession } from "../../src/db/session.js";
import { deriveLockKey } from "../../src/core/lock-key.js";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { waitFor } from "../support/wait.js";

const freshDb = useFreshDatabases("ledger");
const clients: pg.Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
});

async function connect(db: TestDatabase): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url });
  client.on("error", () => {});
  await client.connect();
  clients.push(client);
  return client;
}

const key = deriveLockKey("release-orchestrator");
const ledger = ledgerOf("release_orchestrator", key);

function attempt(app: string, releaseId: string | undefined, leaseMs = 60_000): NewAttempt {
  return {
    releaseId,
    task: "migrate",
    lockName: "release-orchestrator",
    app,
    host: "test",
    pid: 1,
    role: "auto",
    command: "true",
    leaseMs,
  };
}

async function readyDb(label: string): Promise<{ db: TestDatabase; a: pg.Client; b: pg.Client }> {
  const db = await freshDb(label);
  const [a, b] = [await connect(db), await connect(db)];
  await ensureLedger(a, ledger);
  return { db, a, b };
}

const succeed = { status: "succeeded", exitCode: 0, signal: null, outputTail: "" } as const;

describe("ledger", () => {
  it("creates itself once when many clients race to, and says which version it is", async () => {
    const db = await freshDb("create-race");
    const racers = await Promise.all(Array.from({ length: 8 }, () => connect(db)));
    await Promise.all(racers.map((c) => ensureLedger(c, ledger)));
    expect(await readVersion(racers[0]!, ledger)).toBe(2);
    const indexes = await db.query<{ indexname: string }>(
      "SELECT indexname FROM pg_indexes WHERE schemaname = 'release_orchestrator' AND tablename = 'attempts' ORDER BY 1",
    );
    expect(indexes.map((i) => i.indexname)).toEqual(
      expect.arrayContaining(["attempts_one_live_per_release", "attempts_one_running_per_lock"]),
    );
  });

  it("two clients racing to claim, 50 times: exactly one wins each time", async () => {
    const { a, b } = await readyDb("claim-race");
    for (let round = 0; round < 50; round++) {
      const release = `r${round}`;
      const [x, y] = await Promise.all([
        claim(a, ledger, attempt("a", release)),
        claim(b, ledger, attempt("b", release)),
      ]);
      expect(
        [x, y].filter((c) => c !== undefined),
        release,
      ).toHaveLength(1);
      const winner = (x ?? y)!;
      expect(await finish(x ? a : b, ledger, winner, succeed)).toBe(true);
    }
  });

  it("PostgreSQL rejects a second running attempt per lock and a second success per release, even by hand", async () => {
    const { db, a } = await readyDb("constraints");
    const first = await claim(a, ledger, attempt("a", "r1"));
    expect(first).toBeDefined();
    const insert = (release: string, status: string) =>
      db.query(
        `INSERT INTO release_orchestrator.attempts (release_id, task, lock_name, app, host, pid, role, backend_pid, lease_ms, status)
         VALUES ($1, 'migrate', 'release-orchestrator', 'hand', 'h', 1, 'auto', 1, 1000, $2)`,
        [release, status],
      );
    // A second running attempt on the same lock, for another release too.
    await expect(insert("r2", "running")).rejects.toMatchObject({ code: "23505" });
    await finish(a, ledger, first!, succeed);
    // A second success for the same release and task: by INSERT and by UPDATE.
    await expect(insert("r1", "succeeded")).rejects.toMatchObject({ code: "23505" });
    await insert("r1", "failed");
    await expect(
      db.query("UPDATE release_orchestrator.attempts SET status = 'succeeded' WHERE status = 'failed'"),
    ).rejects.toMatchObject({ code: "23505" });
    // And claiming after the success is refused without an error.
    expect(await claim(a, ledger, attempt("a", "r1"))).toBeUndefined();
    // Unversioned runs may succeed many times, one at a time.
    for (let i = 0; i < 3; i++) {
      const turn = await claim(a, ledger, attempt("a", undefined));
      expect(turn).toBeDefined();
      expect(await finish(a, ledger, turn!, succeed)).toBe(true);
    }
  });

  it("fencing: once an attempt is taken over, its renewals and its outcome are refused", async () => {
    const { db, a, b } = await readyDb("fencing");
    const owned = await claim(a, ledger, attempt("a", "r1", 200));
    expect((await renew(a, ledger, owned!)).owned).toBe(true);
    // Not stale yet: a taker cannot abandon it.
    expect(await abandon(b, ledger, owned!)).toBe(false);
    await db.query(
      "UPDATE release_orchestrator.attempts SET heartbeat_at = clock_timestamp() - interval '1 minute' WHERE id = $1",
      [owned!],
    );
    // Expired by the database clock: the owner may not renew it back to life.
    expect((await renew(a, ledger, owned!)).owned).toBe(false);
    expect(await abandon(b, ledger, owned!)).toBe(true);
    expect(await finish(a, ledger, owned!, succeed)).toBe(false);
    const next = await claim(b, ledger, attempt("b", "r1"));
    expect(next).toBeDefined();
    const [row] = await db.query<{ status: string }>(
      "SELECT status FROM release_orchestrator.attempts WHERE id = $1",
      [owned!],
    );
    expect(row?.status).toBe("abandoned");
  });

  it("takeover after success: an attempt that succeeds while a taker waits out its lease is never run again", async () => {
    const { db, a, b } = await readyDb("after-success");
    const stale = await claim(a, ledger, attempt("a", "r1", 60_000));
    const q = { task: "migrate", releaseId: "r1", lockName: "release-orchestrator" };
    const situation = (state: LedgerState) =>
      decide({
        role: "auto",
        followerMode: "wait",
        versioned: true,
        latest: state.latest,
        holder: state.holder,
        finishedBeforeStart: undefined,
        timedOut: false,
        orphanPolicy: "wait",
      });
    // The taker sees a running owner and waits (its lease has not expired).
    expect(situation(await readState(b, ledger, q))).toMatchObject({ action: "wait", until: "outcome" });
    // Its lease expires, and just then the old leader records success (on a fresh connection).
    await db.query(
      "UPDATE release_orchestrator.attempts SET heartbeat_at = clock_timestamp() - interval '2 minutes' WHERE id = $1",
      [stale!],
    );
    const seenStale = await readState(b, ledger, q);
    expect(situation(seenStale)).toMatchObject({ action: "abandon" });
    expect(await finish(await connect(db), ledger, stale!, succeed)).toBe(true);
    // The taker acts on what it saw: the abandon and the claim are both refused by the database.
    expect(await abandon(b, ledger, stale!)).toBe(false);
    expect(await claim(b, ledger, attempt("b", "r1"))).toBeUndefined();
    // Decided afresh: done, without running.
    expect(situation(await readState(b, ledger, q))).toMatchObject({
      action: "done",
      reason: "leader-succeeded",
    });
  });

  it("the lease is measured by the database clock, and a lost lock session is visible at once", async () => {
    const { a, b } = await readyDb("lease");
    const owned = await claim(a, ledger, attempt("a", "r1", 30_000));
    const q = { task: "migrate", releaseId: "r1", lockName: "release-orchestrator" };
    let state = await readState(b, ledger, q);
    expect(state.holder?.lease?.leftMs).toBeGreaterThan(20_000);
    expect(state.holder?.lease?.leftMs).toBeLessThanOrEqual(30_000);
    expect(state.holder?.lease?.sessionGone).toBeNull(); // no lock attached yet
    expect(await provesOwnSession(a)).toBe(true);
    expect(await attachLock(a, ledger, owned!)).toBe(true);
    state = await readState(b, ledger, q);
    expect(state.holder?.lease?.sessionGone).toBe(false);
    expect((await renew(a, ledger, owned!)).lockHeld).toBe(true);
    await a.end();
    state = await waitFor("the lock session to be seen gone", async () => {
      const now = await readState(b, ledger, q);
      return now.holder?.lease?.sessionGone === true ? now : undefined;
    });
    expect(state.holder?.lease?.sessionGone).toBe(true);
    // A lost session alone does not let anyone take over: the lease still runs.
    expect(await abandon(b, ledger, owned!)).toBe(false);
  });

  it("counts only this database's sessions as an attempt's command: another database's attempt 1 is not ours", async () => {
    const { db, a, b } = await readyDb("orphans-here");
    const other = await freshDb("orphans-elsewhere");
    const owned = await claim(a, ledger, attempt("a", "r1", 100));
    const q = { task: "migrate", releaseId: "r1", lockName: "release-orchestrator" };
    const name = `release-orchestrator attempt ${owned!}`;
    const elsewhere = new pg.Client({ connectionString: other.url, application_name: name });
    await elsewhere.connect();
    clients.push(elsewhere);
    await db.query(
      "UPDATE release_orchestrator.attempts SET heartbeat_at = clock_timestamp() - interval '1 minute' WHERE id = $1",
      [owned!],
    );
    expect((await readState(b, ledger, q)).holder?.lease?.orphans).toEqual([]);
    // The same name in this database is the command's own session: it counts, and blocks the takeover.
    const here = new pg.Client({ connectionString: db.url, application_name: name });
    await here.connect();
    clients.push(here);
    const [{ pid } = { pid: 0 }] = (await here.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows;
    expect((await readState(b, ledger, q)).holder?.lease?.orphans).toEqual([pid]);
    expect(await abandon(b, ledger, owned!)).toBe(false);
    await here.end();
    // Its backend leaves pg_stat_activity a moment after the socket closes.
    const taken = await waitFor("the takeover once the session has left", async () =>
      (await abandon(b, ledger, owned!)) ? true : undefined,
    );
    expect(taken).toBe(true);
    expect((await elsewhere.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
  });

  it("records this process as already-done in the same statement that reads the success", async () => {
    const { db, a, b } = await readyDb("already-done");
    const owned = await claim(a, ledger, attempt("a", "r1"));
    await finish(a, ledger, owned!, succeed);
    const who = { app: "late", host: "h", pid: 7, role: "auto", mode: "wait", waitedMs: 0 };
    const state = await readState(
      b,
      ledger,
      { task: "migrate", releaseId: "r1", lockName: "release-orchestrator" },
      who,
    );
    expect(state.recordedDone).toBe(true);
    expect(await db.query("SELECT app, outcome FROM release_orchestrator.follower_outcomes")).toEqual([
      { app: "late", outcome: "already-done" },
    ]);
  });

  it("a waiter's row is live while it waits, ended in place by its outcome or by its own winning claim", async () => {
    const { db, a, b } = await readyDb("waiters");
    const who = { app: "w", host: "test", pid: 7, role: "auto", mode: "wait", waitedMs: 0 };
    const leading = await claim(a, ledger, attempt("lead", "r1"));
    const outcome = (id: number) =>
      db.query<{ app: string; outcome: string; exit_code: number | null; attempt_id: string | null }>(
        "SELECT app, outcome, exit_code, attempt_id FROM release_orchestrator.follower_outcomes WHERE id = $1",
        [id],
      );
    // Waiting, then succeeded with the leader: one row, ended in place.
    const first = await startWaiting(b, ledger, who, {
      task: "migrate",
      releaseId: "r1",
      attemptId: leading!,
    });
    expect(await outcome(first)).toEqual([
      { app: "w", outcome: "waiting", exit_code: null, attempt_id: String(leading!) },
    ]);
    await beatWaiting(b, ledger, first, leading);
    await recordFollowerOutcome(
      b,
      ledger,
      { ...who, releaseId: "r1", task: "migrate", attemptId: leading!, outcome: "succeeded", exitCode: 0 },
      first,
    );
    expect(await outcome(first)).toEqual([
      { app: "w", outcome: "succeeded", exit_code: 0, attempt_id: String(leading!) },
    ]);
    // A waiter whose claim wins (the attempt it waited on was abandoned) is recorded as having become the leader.
    await finish(a, ledger, leading!, {
      status: "interrupted",
      exitCode: null,
      signal: null,
      outputTail: "",
    });
    const second = await startWaiting(b, ledger, who, {
      task: "migrate",
      releaseId: "r2",
      attemptId: undefined,
    });
    const lost = await claim(a, ledger, attempt("other", "r2"));
    expect(await claim(b, ledger, { ...attempt("w", "r2"), waiterId: second })).toBeUndefined();
    expect((await outcome(second))[0]?.outcome).toBe("waiting"); // a lost claim leaves it waiting
    await finish(a, ledger, lost!, { status: "failed", exitCode: 1, signal: null, outputTail: "" });
    const won = await claim(b, ledger, { ...attempt("w", "r2"), waiterId: second });
    expect(await outcome(second)).toEqual([
      { app: "w", outcome: "became-leader", exit_code: null, attempt_id: String(won!) },
    ]);
    const total = await db.query("SELECT 1 FROM release_orchestrator.follower_outcomes");
    expect(total).toHaveLength(2);
  });

  it("a waiter without a heartbeat reads as gone, and is recorded gone when an attempt finishes", async () => {
    const { db, a, b } = await readyDb("gone");
    const who = { app: "w", host: "test", pid: 7, role: "follower", mode: "wait", waitedMs: 1500 };
    const running = await claim(a, ledger, attempt("lead", "r1"));
    const id = await startWaiting(b, ledger, who, {
      task: "migrate",
      releaseId: "r1",
      attemptId: running!,
    });
    const state = () =>
      db.query<{ outcome: string; waited_ms: number }>(
        `SELECT ${followerOutcome("f")} AS outcome, ${followerWaited("f")} AS waited_ms
           FROM release_orchestrator.follower_outcomes f WHERE id = $1`,
        [id],
      );
    expect((await state())[0]?.outcome).toBe("waiting");
    expect((await state())[0]?.waited_ms).toBeGreaterThanOrEqual(1500); // counted from the process's start
    // Its last heartbeat, WAITER_GONE_MS ago (by the database clock): nobody beats for it any more.
    await db.query(
      `UPDATE release_orchestrator.follower_outcomes
          SET heartbeat_at = clock_timestamp() - $2 * interval '1 millisecond',
              started_at = clock_timestamp() - $2 * interval '1 millisecond' - interval '4 seconds'
        WHERE id = $1`,
      [id, WAITER_GONE_MS],
    );
    const gone = (await state())[0];
    expect(gone?.outcome).toBe("gone");
    expect(gone?.waited_ms).toBeGreaterThanOrEqual(4000);
    expect(gone?.waited_ms).toBeLessThan(5000); // until its last heartbeat, not until now
    const [stored] = await db.query<{ outcome: string }>(
      "SELECT outcome FROM release_orchestrator.follower_outcomes WHERE id = $1",
      [id],
    );
    expect(stored?.outcome).toBe("waiting");
    await finish(a, ledger, running!, succeed);
    const [swept] = await db.query<{ outcome: string; waited_ms: number }>(
      "SELECT outcome, waited_ms FROM release_orchestrator.follower_outcomes WHERE id = $1",
      [id],
    );
    expect(swept?.outcome).toBe("gone");
    expect(swept?.waited_ms).toBe(4000);
    // A waiter that comes back (its connection returned) beats again and is waiting once more.
    await beatWaiting(b, ledger, id, running);
    expect((await state())[0]?.outcome).toBe("waiting");
  });

  it("refuses a schema that holds someone else's attempts table (78), and a read-only session (78)", async () => {
    const db = await freshDb("foreign");
    await db.query("CREATE SCHEMA weird; CREATE TABLE weird.attempts (id int)");
    const client = await connect(db);
    const foreign = await ensureLedger(client, ledgerOf("weird", key)).catch(
      (error: unknown) => error as ReleaseError,
    );
    expect(foreign).toBeInstanceOf(ReleaseError);
    expect((foreign as ReleaseError).exitCode).toBe(78);
    expect((foreign as ReleaseError).message).toMatch(
      /^The schema weird holds an attempts table that is not a release-orchestrator ledger; pass --schema/,
    );
    await client.query("SET default_transaction_read_only = on");
    const readOnly = await ensureLedger(client, ledger).catch((error: unknown) => error as ReleaseError);
    expect((readOnly as ReleaseError).exitCode).toBe(78);
    expect((readOnly as ReleaseError).message).toMatch(/read-only server/);
  });

  it("plans: one per release and app, the last run's file wins; a ledger 0.2.0 created reads as no plans, and racing clients complete it", async () => {
    const { db, a } = await readyDb("plans");
    const plan = (tasks: { name: string; scope: "release" | "app" | "every" }[]) => ({
      releaseId: "r1",
      app: "s-app",
      tasks,
      host: "h",
      pid: 1,
    });
    await recordPlan(a, ledger, plan([{ name: "migrate", scope: "release" }]));
    await recordPlan(
      a,
      ledger,
      plan([
        { name: "migrate", scope: "release" },
        { name: "assets", scope: "app" },
      ]),
    );
    const rows = await db.query<{ app: string; tasks: unknown }>(
      "SELECT app, tasks FROM release_orchestrator.plans",
    );
    expect(rows).toEqual([
      {
        app: "s-app",
        tasks: [
          { name: "migrate", scope: "release" },
          { name: "assets", scope: "app" },
        ],
      },
    ]);
    expect((await readPhases(a, ledger)).map((p) => p.tasks.map((t) => t.name))).toEqual([
      ["migrate", "assets"],
    ]);
    // A ledger 0.2.0 created: no plans table, no tries column.
    await db.query("DROP TABLE release_orchestrator.plans");
    await db.query("ALTER TABLE release_orchestrator.attempts DROP COLUMN tries");
    expect(await readPhases(a, ledger)).toEqual([]);
    expect(await readPhasesIfRecorded(a, ledger)).toEqual([]);
    const racers = await Promise.all(Array.from({ length: 6 }, () => connect(db)));
    await Promise.all(racers.map((c) => ensureLedger(c, ledger)));
    expect(await readVersion(a, ledger)).toBe(2);
    await recordPlan(a, ledger, plan([{ name: "migrate", scope: "release" }]));
    expect(await readPhasesIfRecorded(a, ledger)).toHaveLength(1);
  });
});
