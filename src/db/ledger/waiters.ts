// The follower_outcomes table: its one record (built in SQL), and the writes of processes that do
// not run the command: a live 'waiting' row with a heartbeat while they wait, ended in place with
// their outcome; a waiter without a heartbeat for WAITER_GONE_MS reads as 'gone'.

import type pg from "pg";
import type { FollowerOutcomeStatus } from "../../core/records.js";
import {
  followerLastSeen,
  followerOutcome,
  followerWaited,
  isGone,
  millisBetween,
  utc,
  type Ledger,
} from "./sql.js";

const UNDEFINED_TABLE = "42P01";
const INVALID_SCHEMA = "3F000";

/** A missing ledger (table or schema): reads of it read as empty. */
export function isMissingLedger(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === UNDEFINED_TABLE || code === INVALID_SCHEMA;
}

/** SQL: follower row `f` as its record (FollowerRecord), its state and wait by the database clock. */
export function followerJson(f: string): string {
  return `json_build_object(
    'id', ${f}.id, 'releaseId', ${f}.release_id, 'task', ${f}.task, 'app', ${f}.app, 'host', ${f}.host,
    'pid', ${f}.pid, 'role', ${f}.role, 'mode', ${f}.mode, 'attemptId', ${f}.attempt_id,
    'outcome', ${followerOutcome(f)}, 'exitCode', ${f}.exit_code, 'waitedMs', ${followerWaited(f)},
    'recordedAt', ${utc(`CASE WHEN ${f}.outcome = 'waiting' THEN ${followerLastSeen(f)} ELSE ${f}.recorded_at END`)},
    'startedAt', ${utc(`${f}.started_at`)})`;
}

/** Who a process is, for the ledger's follower outcomes. */
export interface Participant {
  app: string;
  host: string;
  pid: number;
  role: string;
  mode: string;
  waitedMs: number;
}

/** How a process that did not run the command ended, as it records it. */
export interface FollowerOutcome extends Participant {
  releaseId: string | undefined;
  task: string;
  attemptId: number | undefined;
  outcome: Extract<
    FollowerOutcomeStatus,
    "succeeded" | "already-done" | "failed" | "timeout" | "skipped" | "interrupted"
  >;
  exitCode: number;
}

/** SQL: marks 'gone' the waiting rows without a recent heartbeat (run when an attempt ends). */
export function sweepGoneWaiters(ledger: Ledger): string {
  return `UPDATE ${ledger.table("follower_outcomes")} f
             SET outcome = 'gone', recorded_at = f.heartbeat_at,
                 waited_ms = ${millisBetween("f.started_at", "f.heartbeat_at")}
           WHERE ${isGone("f")}`;
}

/**
 * Records how a process that did not run the command ended. A process that was waiting ends its
 * own 'waiting' row (`waiterId`); one that never waited gets a new row. One statement either way.
 */
export async function recordFollowerOutcome(
  client: pg.Client,
  ledger: Ledger,
  outcome: FollowerOutcome,
  waiterId?: number,
): Promise<void> {
  const table = ledger.table("follower_outcomes");
  try {
    await client.query(
      `WITH ended AS (
         UPDATE ${table}
            SET outcome = $9, exit_code = $10, waited_ms = $11, attempt_id = coalesce($8, attempt_id),
                recorded_at = clock_timestamp(), heartbeat_at = clock_timestamp()
          WHERE id = $12
          RETURNING id)
       INSERT INTO ${table} (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE NOT EXISTS (SELECT 1 FROM ended)`,
      [
        outcome.releaseId ?? null,
        outcome.task,
        outcome.app,
        outcome.host,
        outcome.pid,
        outcome.role,
        outcome.mode,
        outcome.attemptId ?? null,
        outcome.outcome,
        outcome.exitCode,
        Math.round(outcome.waitedMs),
        waiterId ?? null,
      ],
    );
  } catch (error) {
    if (!isMissingLedger(error)) throw error;
  }
}

/**
 * Records this process as waiting now (for `attemptId`, or for a leader to appear), with a
 * heartbeat; the row is ended by recordFollowerOutcome or claim. Returns the row's id.
 */
export async function startWaiting(
  client: pg.Client,
  ledger: Ledger,
  who: Participant,
  q: { task: string; releaseId: string | undefined; attemptId: number | undefined },
): Promise<number> {
  const result = await client.query<{ id: string }>(
    `INSERT INTO ${ledger.table("follower_outcomes")}
            (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms, started_at, heartbeat_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', NULL, 0, clock_timestamp() - $9::integer * interval '1 millisecond', clock_timestamp())
     RETURNING id`,
    [
      q.releaseId ?? null,
      q.task,
      who.app,
      who.host,
      who.pid,
      who.role,
      who.mode,
      q.attemptId ?? null,
      Math.round(who.waitedMs),
    ],
  );
  return Number(result.rows[0]?.id);
}

/** A waiter's heartbeat: it still waits, now for `attemptId` if known (a waiter seen as gone comes back). */
export async function beatWaiting(
  client: pg.Client,
  ledger: Ledger,
  waiterId: number,
  attemptId: number | undefined,
): Promise<void> {
  await client.query(
    `UPDATE ${ledger.table("follower_outcomes")}
        SET heartbeat_at = clock_timestamp(), outcome = 'waiting', attempt_id = coalesce($2, attempt_id)
      WHERE id = $1 AND outcome IN ('waiting', 'gone')`,
    [waiterId, attemptId ?? null],
  );
}
