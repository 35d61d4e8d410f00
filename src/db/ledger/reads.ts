// Reading the ledger for people: the lock holder now, running attempts, and the history of attempts
// with the outcomes of the processes that waited on them. Shared by `status`, `history` and `serve`.

import type pg from "pg";
import { quoteIdent } from "../connect.js";
import { describeBlock, type Blocked } from "../../core/blocking.js";
import { followerLastSeenSql, followerOutcomeSql, followerWaitedSql, isMissingLedger } from "./attempts.js";

export interface FollowerOutcomeRow {
  id: number;
  app: string;
  host: string;
  pid: number;
  role: string;
  mode: string;
  /** How it ended, or "waiting" while it waits (heartbeat fresh), or "gone" (no heartbeat for WAITER_GONE_MS). */
  outcome: string;
  /** null while waiting, when gone, and for a waiter that became the leader. */
  exitCode: number | null;
  /** Until now for a live waiter; until its last heartbeat for a gone one. */
  waitedMs: number;
  /** When it ended; for a waiter, its last heartbeat. */
  recordedAt: string;
  /** When it started waiting (null for rows written before waiters were live, and for skips). */
  startedAt: string | null;
  /** The attempt it waited on, if any. */
  attemptId: number | null;
  releaseId: string | null;
  task: string;
}

export interface AttemptRecord {
  id: number;
  releaseId: string | null;
  task: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  command: string | null;
  status: string;
  exitCode: number | null;
  signal: string | null;
  startedAt: string;
  heartbeatAt: string;
  /** Running attempts: when the lease ends unless renewed, by the database clock. */
  leaseEndsAt: string | null;
  /** The backend holding the advisory lock for this attempt, when its leader's session was proven its own. */
  lockBackendPid: number | null;
  finishedAt: string | null;
  durationMs: number | null;
  outputTail: string | null;
  /** Running attempts: what a command session has waited on for a few seconds, seen at the last renewal. */
  blocked: Blocked | null;
  /** The same, in the sentence the run prints (with the fix). */
  blockedText: string | null;
  followers: FollowerOutcomeRow[];
}

export interface ReleaseRecord {
  releaseId: string | null;
  task: string;
  /** The app whose attempt succeeded, or whose attempt was the last. */
  leader: string | null;
  status: string;
  startedAt: string;
  attempts: AttemptRecord[];
  /** Outcomes of processes that did not run an attempt, not tied to one (skips, timeouts before any attempt). */
  others: FollowerOutcomeRow[];
}

export interface HistoryFilter {
  release?: string | undefined;
  app?: string | undefined;
  task?: string | undefined;
  /** Most recent attempts to return; default 20. */
  limit?: number | undefined;
  includeOutput?: boolean | undefined;
}

interface AttemptRow {
  id: string;
  release_id: string | null;
  task: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  command: string | null;
  status: string;
  exit_code: number | null;
  signal: string | null;
  started_at: Date;
  heartbeat_at: Date;
  lease_ends_at: Date | null;
  lock_backend_pid: number | null;
  finished_at: Date | null;
  duration_ms: number | null;
  output_tail: string | null;
  blocked: Blocked | null;
  now: Date;
}

interface OutcomeRow {
  id: string;
  release_id: string | null;
  task: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  mode: string;
  attempt_id: string | null;
  outcome: string;
  exit_code: number | null;
  waited_ms: number;
  recorded_at: Date;
  started_at: Date | null;
}

/** The follower rows' columns as readers see them: a waiter's state and wait computed by the database clock. */
export function followerColumns(f: string): string {
  return `${f}.id, ${f}.release_id, ${f}.task, ${f}.app, ${f}.host, ${f}.pid, ${f}.role, ${f}.mode, ${f}.attempt_id,
          ${followerOutcomeSql(f)} AS outcome, ${f}.exit_code, ${followerWaitedSql(f)} AS waited_ms,
          CASE WHEN ${f}.outcome = 'waiting' THEN ${followerLastSeenSql(f)} ELSE ${f}.recorded_at END AS recorded_at,
          ${f}.started_at`;
}

export function toOutcome(row: OutcomeRow): FollowerOutcomeRow {
  return {
    id: Number(row.id),
    app: row.app,
    host: row.host,
    pid: row.pid,
    role: row.role,
    mode: row.mode,
    outcome: row.outcome,
    exitCode: row.exit_code,
    waitedMs: row.waited_ms,
    recordedAt: row.recorded_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    attemptId: row.attempt_id === null ? null : Number(row.attempt_id),
    releaseId: row.release_id,
    task: row.task,
  };
}

/** Attempts, newest first, each with the outcomes of the processes that waited on it. A missing ledger reads as empty. */
export async function readAttempts(
  client: pg.Client,
  schema: string,
  filter: HistoryFilter = {},
): Promise<AttemptRecord[]> {
  const s = quoteIdent(schema);
  const limit = Math.max(1, Math.min(1000, filter.limit ?? 20));
  try {
    const attempts = await client.query<AttemptRow>(
      `SELECT id, release_id, task, app, host, pid, role, command, status, exit_code, signal, started_at,
              heartbeat_at, lock_backend_pid,
              CASE WHEN status = 'running' THEN heartbeat_at + lease_ms * interval '1 millisecond' END AS lease_ends_at,
              finished_at, duration_ms, ${filter.includeOutput === false ? "NULL AS output_tail" : "output_tail"},
              CASE WHEN status = 'running' THEN blocked END AS blocked, clock_timestamp() AS now
         FROM ${s}.attempts
        WHERE ($1::text IS NULL OR release_id = $1 OR release_id LIKE $1 || '%')
          AND ($2::text IS NULL OR task = $2)
          AND ($3::text IS NULL OR app = $3
               OR id IN (SELECT attempt_id FROM ${s}.follower_outcomes WHERE app = $3 AND attempt_id IS NOT NULL))
        ORDER BY id DESC
        LIMIT $4`,
      [filter.release ?? null, filter.task ?? null, filter.app ?? null, limit],
    );
    const ids = attempts.rows.map((row) => row.id);
    const outcomes = await client.query<OutcomeRow>(
      `SELECT ${followerColumns("f")} FROM ${s}.follower_outcomes f WHERE f.attempt_id = ANY ($1::bigint[]) ORDER BY f.id`,
      [ids],
    );
    const byAttempt = new Map<string, FollowerOutcomeRow[]>();
    for (const row of outcomes.rows) {
      const key = String(row.attempt_id);
      byAttempt.set(key, [...(byAttempt.get(key) ?? []), toOutcome(row)]);
    }
    return attempts.rows.map((row) => ({
      id: Number(row.id),
      releaseId: row.release_id,
      task: row.task,
      app: row.app,
      host: row.host,
      pid: row.pid,
      role: row.role,
      command: row.command,
      status: row.status,
      exitCode: row.exit_code,
      signal: row.signal,
      startedAt: row.started_at.toISOString(),
      heartbeatAt: row.heartbeat_at.toISOString(),
      leaseEndsAt: row.lease_ends_at?.toISOString() ?? null,
      lockBackendPid: row.lock_backend_pid,
      finishedAt: row.finished_at?.toISOString() ?? null,
      durationMs: row.duration_ms,
      outputTail: row.output_tail,
      blocked: row.blocked,
      blockedText: row.blocked === null ? null : describeBlock(row.blocked, row.now.toISOString()),
      followers: byAttempt.get(row.id) ?? [],
    }));
  } catch (error) {
    if (isMissingLedger(error)) return [];
    throw error;
  }
}

/** Attempts grouped by release and task, newest release first (for the status page and --json). */
export async function readReleases(
  client: pg.Client,
  schema: string,
  filter: HistoryFilter = {},
): Promise<ReleaseRecord[]> {
  const attempts = await readAttempts(client, schema, { ...filter, limit: filter.limit ?? 100 });
  const s = quoteIdent(schema);
  let others: OutcomeRow[] = [];
  try {
    others = (
      await client.query<OutcomeRow>(
        `SELECT ${followerColumns("f")} FROM ${s}.follower_outcomes f WHERE f.attempt_id IS NULL ORDER BY f.id DESC LIMIT 500`,
      )
    ).rows;
  } catch (error) {
    if (!isMissingLedger(error)) throw error;
  }
  const releases = new Map<string, ReleaseRecord>();
  for (const attempt of [...attempts].reverse()) {
    const key = `${attempt.releaseId ?? ""}\u0000${attempt.task}`;
    const release = releases.get(key) ?? {
      releaseId: attempt.releaseId,
      task: attempt.task,
      leader: null,
      status: attempt.status,
      startedAt: attempt.startedAt,
      attempts: [],
      others: [],
    };
    release.attempts.push(attempt);
    release.status = release.status === "succeeded" ? "succeeded" : attempt.status;
    if (attempt.status === "succeeded" || release.leader === null || release.status !== "succeeded") {
      release.leader = attempt.app;
    }
    releases.set(key, release);
  }
  for (const row of others) {
    const release = releases.get(`${row.release_id ?? ""}\u0000${row.task}`);
    release?.others.push(toOutcome(row));
  }
  return [...releases.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}

/** The processes recorded as waiting now (outcome "waiting") or that stopped beating ("gone"), oldest first. */
export async function readWaiters(client: pg.Client, schema: string): Promise<FollowerOutcomeRow[]> {
  try {
    const result = await client.query<OutcomeRow>(
      `SELECT ${followerColumns("f")} FROM ${quoteIdent(schema)}.follower_outcomes f
        WHERE f.outcome = 'waiting' ORDER BY f.id`,
    );
    return result.rows.map(toOutcome);
  } catch (error) {
    if (isMissingLedger(error)) return [];
    throw error;
  }
}
