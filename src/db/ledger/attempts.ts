// The attempts table: its one record (built in SQL), and every write the run makes to it. Ownership
// is a lease taken and renewed by single autocommit statements (so it works through any pooler),
// decided by the database clock, fenced by the attempt id, and enforced by unique indexes: PostgreSQL
// itself rejects a second running attempt per lock or a second success per release and task.

import type pg from "pg";
import type { Blocked } from "../../core/blocking.js";
import type { Attempt, AttemptStatus } from "../../core/records.js";
import {
  blockedSql,
  holdsAdvisoryLock,
  leaseEnd,
  millisBetween,
  notifyAttempt,
  orphanPids,
  triesOf,
  utc,
  type Ledger,
} from "./sql.js";
import { sweepGoneWaiters, type Participant } from "./waiters.js";

/**
 * SQL: attempt row `a` as its record (Attempt), with its lease by the database clock when running.
 * `lock` names the query parameters that hold the lock key (the lock session's signal); the lease's
 * orphans (the command's sessions still connected) are looked up only once it expired.
 */
export function attemptJson(
  a: string,
  lock: { namespace: string; key: string },
  options: { outputTail?: boolean } = {},
): string {
  const running = `${a}.status = 'running'`;
  return `json_build_object(
    'id', ${a}.id, 'releaseId', ${a}.release_id, 'task', ${a}.task, 'lockName', ${a}.lock_name,
    'app', ${a}.app, 'host', ${a}.host, 'pid', ${a}.pid, 'role', ${a}.role, 'command', ${a}.command,
    'status', ${a}.status, 'exitCode', ${a}.exit_code, 'signal', ${a}.signal,
    'startedAt', ${utc(`${a}.started_at`)}, 'heartbeatAt', ${utc(`${a}.heartbeat_at`)},
    'finishedAt', ${utc(`${a}.finished_at`)}, 'durationMs', ${a}.duration_ms,
    'outputTail', ${options.outputTail === true ? `${a}.output_tail` : "NULL"},
    'lockBackendPid', ${a}.lock_backend_pid, 'tries', ${triesOf(a)},
    'lease', CASE WHEN ${running} THEN json_build_object(
      'endsAt', ${utc(leaseEnd(a))},
      'leftMs', ${millisBetween("clock_timestamp()", leaseEnd(a), "bigint")},
      'renewedMsAgo', greatest(0, ${millisBetween(`${a}.heartbeat_at`, "clock_timestamp()", "bigint")}),
      'sessionGone', CASE WHEN ${a}.lock_backend_pid IS NULL THEN NULL
                          ELSE NOT ${holdsAdvisoryLock(`${a}.lock_backend_pid`, lock.namespace, lock.key)} END,
      'orphans', CASE WHEN ${leaseEnd(a)} > clock_timestamp() THEN '[]'::json ELSE (${orphanPids(a)}) END) END,
    'blocked', CASE WHEN ${running} THEN ${a}.blocked END)`;
}

export interface NewAttempt {
  releaseId: string | undefined;
  task: string;
  lockName: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  command: string;
  /** How long the lease lasts after each renewal. */
  leaseMs: number;
  /** This process's 'waiting' row, ended as 'became-leader' by the same statement when the claim wins. */
  waiterId?: number | undefined;
}

/** How a leader ends its attempt; the other statuses are written by others (abandoned) or by 0.1.0's upgrade. */
export interface AttemptOutcome {
  status: Exclude<AttemptStatus, "running" | "abandoned" | "duplicate">;
  exitCode: number | null;
  signal: string | null;
  outputTail: string;
}

/** A renewal's answer: whether the lease is still ours, and whether our lock session still holds the lock. */
export interface Renewal {
  owned: boolean;
  lockHeld: boolean;
  /** What one of the command's sessions has waited on for BLOCKED_AFTER_MS or more, if anything. */
  blocked: Blocked | null;
}

/** What the run needs of the ledger in one read. */
export interface LedgerState {
  /** For this release and task: a succeeded attempt if any, else the latest. */
  latest: Attempt | undefined;
  /** The running attempt that owns this lock now, whatever its release. */
  holder: Attempt | undefined;
  /** True when this read also recorded this process as "already-done". */
  recordedDone: boolean;
}

/**
 * Reads, in one statement, the attempt that matters for this release and task and the attempt that
 * owns the lock, each with its lease by the database clock. With `recordIfDone`, the same statement
 * records this process as "already-done" when the release already succeeded.
 */
export async function readState(
  client: pg.Client,
  ledger: Ledger,
  q: { task: string; releaseId: string | undefined; lockName: string },
  recordIfDone?: Participant,
): Promise<LedgerState> {
  const attempts = ledger.table("attempts");
  const lock = { namespace: "$1", key: "$2" };
  const result = await client.query<{ latest: Attempt | null; holder: Attempt | null; recorded: number }>(
    `WITH latest AS (
       SELECT a.id, a.status, ${attemptJson("a", lock)} AS record FROM ${attempts} a
        WHERE a.task = $3 AND a.release_id IS NOT DISTINCT FROM $4
        ORDER BY (a.status = 'succeeded') DESC, a.id DESC LIMIT 1),
     holder AS (
       SELECT ${attemptJson("a", lock)} AS record FROM ${attempts} a
        WHERE a.lock_name = $5 AND a.status = 'running' LIMIT 1),
     recorded AS (
       INSERT INTO ${ledger.table("follower_outcomes")}
              (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms)
       SELECT $4, $3, $6, $7, $8, $9, $10, latest.id, 'already-done', 0, $11 FROM latest
        WHERE $12::boolean AND $4::text IS NOT NULL AND latest.status = 'succeeded'
       RETURNING id)
     SELECT (SELECT record FROM latest) AS latest, (SELECT record FROM holder) AS holder,
            (SELECT count(*)::int FROM recorded) AS recorded`,
    [
      ledger.key.namespace,
      ledger.key.key,
      q.task,
      q.releaseId ?? null,
      q.lockName,
      recordIfDone?.app ?? "",
      recordIfDone?.host ?? "",
      recordIfDone?.pid ?? 0,
      recordIfDone?.role ?? "",
      recordIfDone?.mode ?? "",
      Math.round(recordIfDone?.waitedMs ?? 0),
      recordIfDone !== undefined,
    ],
  );
  const row = result.rows[0];
  return {
    latest: row?.latest ?? undefined,
    holder: row?.holder ?? undefined,
    recordedDone: (row?.recorded ?? 0) > 0,
  };
}

/**
 * Claims the task: inserts a running attempt unless the constraints say another attempt owns the
 * lock or this release already succeeded. One autocommit statement; no ERROR when it loses. Returns
 * the attempt's id, or undefined when another owns it.
 */
export async function claim(
  client: pg.Client,
  ledger: Ledger,
  attempt: NewAttempt,
): Promise<number | undefined> {
  const result = await client.query<{ id: string }>(
    `WITH claimed AS (
       INSERT INTO ${ledger.table("attempts")}
              (release_id, task, lock_name, app, host, pid, role, backend_pid, command, lease_ms, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, pg_backend_pid(), $8, $9, 'running')
       ON CONFLICT DO NOTHING
       RETURNING id, task, release_id),
     led AS (
       UPDATE ${ledger.table("follower_outcomes")} f
          SET outcome = 'became-leader', exit_code = NULL, attempt_id = claimed.id,
              waited_ms = ${millisBetween("f.started_at", "clock_timestamp()")},
              recorded_at = clock_timestamp(), heartbeat_at = clock_timestamp()
         FROM claimed WHERE f.id = $11)
     SELECT id, ${notifyAttempt("$10", "started", "claimed")} FROM claimed`,
    [
      attempt.releaseId ?? null,
      attempt.task,
      attempt.lockName,
      attempt.app,
      attempt.host,
      attempt.pid,
      attempt.role,
      attempt.command,
      attempt.leaseMs,
      ledger.channel,
      attempt.waiterId ?? null,
    ],
  );
  const row = result.rows[0];
  return row === undefined ? undefined : Number(row.id);
}

/**
 * On a session proven to be our own, takes the advisory lock and records which backend holds it:
 * the instant signal that this leader's session died. False when the lock is taken (a leak).
 */
export async function attachLock(client: pg.Client, ledger: Ledger, attemptId: number): Promise<boolean> {
  const result = await client.query(
    `UPDATE ${ledger.table("attempts")} SET lock_backend_pid = pg_backend_pid()
      WHERE id = $1 AND status = 'running' AND pg_try_advisory_lock($2, $3)
      RETURNING id`,
    [attemptId, ledger.key.namespace, ledger.key.key],
  );
  return result.rowCount === 1;
}

/**
 * Renews the lease, fenced by the attempt id: only a running attempt is renewed, and only while its
 * lease has not expired, or by the session that holds its advisory lock (a stalled leader that resumed:
 * nobody may take over while that session lives, so its lease is still its own). An expired lease of a
 * leader without a lock session may already be taken over: it is never renewed. Also says whether the
 * lock session holds, and records what blocks the command's sessions, if anything.
 */
export async function renew(
  client: pg.Client,
  ledger: Ledger,
  attemptId: number,
  timeoutMs?: number,
): Promise<Renewal> {
  const result = await client.query<{ lock_held: boolean; blocked: Blocked | null }>({
    // A renewal that does not answer in time counts as failed (pg's client-side query_timeout).
    ...(timeoutMs === undefined ? {} : { query_timeout: timeoutMs }),
    text: `UPDATE ${ledger.table("attempts")} a SET heartbeat_at = clock_timestamp(), blocked = (${blockedSql("a")})
      WHERE a.id = $1 AND a.status = 'running'
        AND (${leaseEnd("a")} > clock_timestamp()
             OR (a.lock_backend_pid = pg_backend_pid() AND ${holdsAdvisoryLock("pg_backend_pid()", "$2", "$3")}))
      RETURNING a.lock_backend_pid IS NULL
             OR (a.lock_backend_pid = pg_backend_pid() AND ${holdsAdvisoryLock("pg_backend_pid()", "$2", "$3")}) AS lock_held,
             a.blocked`,
    values: [attemptId, ledger.key.namespace, ledger.key.key],
  });
  const row = result.rows[0];
  return { owned: row !== undefined, lockHeld: row?.lock_held === true, blocked: row?.blocked ?? null };
}

/** Records the outcome, fenced by the attempt id, and notifies waiters at commit. False if not ours any more. */
export async function finish(
  client: pg.Client,
  ledger: Ledger,
  attemptId: number,
  outcome: AttemptOutcome,
): Promise<boolean> {
  const result = await client.query(
    `WITH updated AS (
       UPDATE ${ledger.table("attempts")}
          SET status = $2, exit_code = $3, signal = $4, output_tail = $5, finished_at = clock_timestamp(),
              duration_ms = ${millisBetween("started_at", "clock_timestamp()")}
        WHERE id = $1 AND status = 'running'
        RETURNING id, status, task, release_id),
     swept AS (${sweepGoneWaiters(ledger)})
     SELECT ${notifyAttempt("$6", "finished", "updated")} FROM updated`,
    [attemptId, outcome.status, outcome.exitCode, outcome.signal, outcome.outputTail, ledger.channel],
  );
  return result.rowCount === 1;
}

/**
 * Takes over a stale attempt: marks it abandoned only if, by the database clock and in one statement,
 * its lease has expired, its lock session (if it had one) no longer holds the lock, and none of its
 * command's sessions is connected. False when it was not stale.
 */
export async function abandon(client: pg.Client, ledger: Ledger, attemptId: number): Promise<boolean> {
  const result = await client.query(
    `WITH abandoned AS (
       UPDATE ${ledger.table("attempts")} a
          SET status = 'abandoned', finished_at = clock_timestamp(),
              duration_ms = ${millisBetween("a.started_at", "clock_timestamp()")}
        WHERE a.id = $1 AND a.status = 'running' AND ${leaseEnd("a")} <= clock_timestamp()
          AND (a.lock_backend_pid IS NULL OR NOT ${holdsAdvisoryLock("a.lock_backend_pid", "$3", "$4")})
          AND json_array_length((${orphanPids("a")})) = 0
        RETURNING a.id, a.status, a.task, a.release_id)
     SELECT ${notifyAttempt("$2", "finished", "abandoned")} FROM abandoned`,
    [attemptId, ledger.channel, ledger.key.namespace, ledger.key.key],
  );
  return result.rowCount === 1;
}
