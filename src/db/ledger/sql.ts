// SQL fragments shared by the ledger's statements and reads, written once: a lease's end, the lock
// signal, an attempt's command sessions, what blocks them, and how a waiter reads by the database
// clock. Fragments only, no queries; `a` and `f` name the attempts and follower_outcomes rows.

import pg from "pg";
import type { LockKey } from "../../core/lock-key.js";

/** The ledger of one schema: where its tables are, the lock key it fences, the channel it notifies. */
export interface Ledger {
  readonly schema: string;
  /** The schema as an SQL identifier (pg.escapeIdentifier: the one place it enters SQL text). */
  readonly quotedSchema: string;
  /** `"schema".table`, quoted once here. */
  table(name: "attempts" | "follower_outcomes" | "meta" | "plans"): string;
  readonly key: LockKey;
  /** The NOTIFY channel of attempts starting and ending. */
  readonly channel: string;
}

export function ledgerOf(schema: string, key: LockKey): Ledger {
  const quoted = pg.escapeIdentifier(schema);
  return { schema, quotedSchema: quoted, key, channel: schema, table: (name) => `${quoted}.${name}` };
}

/** A waiter whose heartbeat is older than this is gone (SIGKILLed, or its connection lost). */
export const WAITER_GONE_MS = 10_000;
/** How often a waiter renews its heartbeat (it beats on its polls, at most this often). */
export const WAITER_BEAT_MS = 2_000;
/** A command session waiting on a lock this long is reported as blocked. */
export const BLOCKED_AFTER_MS = 3_000;

/** The application_name (PGAPPNAME) a command's sessions get, naming their attempt. */
export const ATTEMPT_APPLICATION_PREFIX = "release-orchestrator attempt ";
export function attemptApplicationName(attemptId: number): string {
  return `${ATTEMPT_APPLICATION_PREFIX}${attemptId}`;
}

/**
 * Attempt row `a`'s cancelled tries, read so that a ledger 0.2.0 created (no tries column until a run
 * of this version adds it) reads as none: status, history and the page work before that run.
 */
export function triesOf(a: string): string {
  return `coalesce(to_jsonb(${a}) -> 'tries', '[]'::jsonb)`;
}

/** A timestamp as ISO 8601 in UTC with milliseconds, whatever the session's TimeZone. */
export function utc(expr: string): string {
  return `to_char((${expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** Milliseconds between two timestamps, as a whole number (`bigint` where the span is unbounded). */
export function millisBetween(from: string, to: string, type: "integer" | "bigint" = "integer"): string {
  return `(extract(epoch FROM ${to} - ${from}) * 1000)::${type}`;
}

/** The end of attempt `a`'s lease: its last renewal plus its lease length. */
export function leaseEnd(a: string): string {
  return `${a}.heartbeat_at + ${a}.lease_ms * interval '1 millisecond'`;
}

/** Whether backend `pid` holds the session advisory lock of key ($ns, $key): SQL expressions. */
export function holdsAdvisoryLock(pid: string, ns: string, key: string): string {
  return `EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = ${pid}
      AND l.classid = ${ns}::bigint::oid AND l.objid = ${key}::bigint::oid AND l.objsubid = 2)`;
}

/**
 * Whether pg_stat_activity row `s` is a session of attempt `a`'s command (PGAPPNAME names the attempt),
 * in this database only: attempt ids are per ledger, and another database's attempt 1 is not ours.
 */
export function isCommandSession(s: string, a: string): string {
  return `${s}.application_name = '${ATTEMPT_APPLICATION_PREFIX}' || ${a}.id AND ${s}.datname = current_database()`;
}

/** A JSON array of the backend pids of attempt `a`'s command sessions still connected, idle ones too. */
export function orphanPids(a: string): string {
  return `SELECT coalesce(json_agg(s.pid), '[]'::json) FROM pg_stat_activity s
           WHERE ${isCommandSession("s", a)} AND s.pid <> pg_backend_pid()`;
}

/**
 * A JSON object (Blocked) when one of attempt `a`'s command sessions has waited on a lock for
 * BLOCKED_AFTER_MS or more, naming the session that blocks it (pg_blocking_pids); else NULL. Of
 * several blockers, the one that is not itself waiting (the head of the queue), oldest transaction first.
 * `waitstart` is read through to_jsonb: PostgreSQL before 14 has no such column (query_start then).
 */
export function blockedSql(a: string): string {
  return `SELECT json_build_object(
             'pid', w.pid, 'since', ${utc("w.since")}, 'lockType', w.locktype, 'mode', w.mode, 'relation', w.relation,
             'seenAt', ${utc("clock_timestamp()")},
             'blocker', json_build_object('pid', b.pid, 'applicationName', b.application_name, 'state', b.state,
                          'stateSince', ${utc("b.state_change")}, 'xactStart', ${utc("b.xact_start")},
                          'waiting', b.wait_event_type IS NOT DISTINCT FROM 'Lock'))
            FROM (SELECT s.pid, l.locktype, l.mode,
                         CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
                         coalesce((to_jsonb(l) ->> 'waitstart')::timestamptz, s.query_start) AS since
                    FROM pg_stat_activity s JOIN pg_locks l ON l.pid = s.pid AND NOT l.granted
                   WHERE ${isCommandSession("s", a)}) w
            CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
            JOIN pg_stat_activity b ON b.pid = bp.pid
           WHERE w.since <= clock_timestamp() - interval '${BLOCKED_AFTER_MS} milliseconds'
           ORDER BY w.since, b.wait_event_type IS NOT DISTINCT FROM 'Lock', b.xact_start NULLS LAST
           LIMIT 1`;
}

/** Whether follower row `f` is a waiter without a heartbeat for WAITER_GONE_MS (by the database clock). */
export function isGone(f: string): string {
  return `(${f}.outcome = 'waiting' AND ${f}.heartbeat_at + interval '${WAITER_GONE_MS} milliseconds' <= clock_timestamp())`;
}

/** Follower row `f`'s outcome as readers see it: a 'waiting' row without a recent heartbeat is 'gone'. */
export function followerOutcome(f: string): string {
  return `CASE WHEN ${isGone(f)} THEN 'gone' ELSE ${f}.outcome END`;
}

/** When a waiter was last known to wait: now while it beats, its last heartbeat once gone. */
export function followerLastSeen(f: string): string {
  return `CASE WHEN ${isGone(f)} THEN ${f}.heartbeat_at ELSE clock_timestamp() END`;
}

/** How long follower row `f` waited: for a live waiter until now, for a gone one until its last heartbeat. */
export function followerWaited(f: string): string {
  return `CASE WHEN ${f}.outcome = 'waiting' THEN ${millisBetween(`${f}.started_at`, followerLastSeen(f))}
               ELSE ${f}.waited_ms END`;
}

/** The NOTIFY that an attempt started or finished, for waiters that LISTEN; `row` has id, task, release_id. */
export function notifyAttempt(channel: string, event: "started" | "finished", row: string): string {
  const status = event === "finished" ? `, 'status', ${row}.status` : "";
  return `pg_notify(${channel}, json_build_object('event', '${event}', 'attempt', ${row}.id${status},
            'task', ${row}.task, 'release', ${row}.release_id)::text)`;
}
