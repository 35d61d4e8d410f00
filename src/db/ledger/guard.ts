// The lock-queue guard's statements: find a statement of the attempt's command that has waited for a
// table lock for at least --lock-wait while other sessions queue behind it, and cancel it, in one
// statement; and keep each cancelled try in the attempt's row (fenced by the attempt id).

import type pg from "pg";
import type { GuardBlocker, LockTry } from "../../core/lock-guard.js";
import { attemptApplicationName, millisBetween, utc, type Ledger } from "./sql.js";

/** What the guard cancelled, as the database saw it at that instant; `cancelled` false when it could not. */
export interface Cancelled {
  pid: number;
  mode: string;
  relation: string | null;
  waitedMs: number;
  queued: number;
  cancelledAt: string;
  blocker: GuardBlocker;
  cancelled: boolean;
}

const firstLine = (expr: string) => `nullif(left(split_part(${expr}, E'\\n', 1), 200), '')`;

/**
 * One statement: the command's session (application_name naming the attempt) that waits for a
 * relation lock since at least `lockWaitMs`, blocked by a session that is not the attempt's, with at
 * least one other session (not the attempt's) queued behind it; then pg_cancel_backend on it. Only
 * relation locks: a CREATE INDEX CONCURRENTLY waiting for old snapshots (virtualxid), a migrator
 * waiting on its own advisory lock, or a row lock never qualify; a running statement holds no
 * ungranted lock. A missing privilege raises 42501 (the caller warns once).
 */
export async function cancelStalling(
  client: pg.Client,
  attemptId: number,
  lockWaitMs: number,
): Promise<Cancelled | undefined> {
  const ours = (s: string) =>
    `coalesce(${s}.application_name = $1 AND ${s}.datname = current_database(), false)`;
  const result = await client.query<{ found: Omit<Cancelled, "cancelled">; cancelled: boolean }>({
    text: `WITH waiting AS MATERIALIZED (
             SELECT s.pid, l.mode, l.relation::regclass::text AS relation,
                    coalesce((to_jsonb(l) ->> 'waitstart')::timestamptz, s.query_start) AS since
               FROM pg_stat_activity s
               JOIN pg_locks l ON l.pid = s.pid AND NOT l.granted AND l.locktype = 'relation'
              WHERE ${ours("s")}),
           chosen AS MATERIALIZED (
             SELECT w.*, b.blocker, q.queued
               FROM waiting w
               CROSS JOIN LATERAL (
                 SELECT json_build_object('pid', b.pid, 'applicationName', b.application_name,
                          'state', b.state, 'stateSince', ${utc("b.state_change")},
                          'xactStart', ${utc("b.xact_start")}, 'query', ${firstLine("b.query")}) AS blocker
                   FROM unnest(pg_blocking_pids(w.pid)) AS bp(pid)
                   JOIN pg_stat_activity b ON b.pid = bp.pid
                  WHERE NOT ${ours("b")}
                  ORDER BY b.wait_event_type IS NOT DISTINCT FROM 'Lock', b.xact_start NULLS LAST
                  LIMIT 1) b
               CROSS JOIN LATERAL (
                 SELECT count(*)::integer AS queued FROM pg_stat_activity q
                  WHERE q.pid <> w.pid AND q.wait_event_type = 'Lock' AND NOT ${ours("q")}
                    AND CASE WHEN q.wait_event_type = 'Lock' THEN w.pid = ANY (pg_blocking_pids(q.pid)) END) q
              WHERE w.since <= clock_timestamp() - $2 * interval '1 millisecond' AND q.queued > 0
              ORDER BY w.since
              LIMIT 1)
           SELECT json_build_object('pid', c.pid, 'mode', c.mode, 'relation', c.relation,
                    'waitedMs', ${millisBetween("c.since", "clock_timestamp()")}, 'queued', c.queued,
                    'cancelledAt', ${utc("clock_timestamp()")}, 'blocker', c.blocker) AS found,
                  pg_cancel_backend(c.pid) AS cancelled
             FROM chosen c`,
    values: [attemptApplicationName(attemptId), lockWaitMs],
  });
  const row = result.rows[0];
  return row === undefined ? undefined : { ...row.found, cancelled: row.cancelled };
}

/** Appends a cancelled try to the attempt's row while it runs (fenced: never to another's attempt). */
export async function recordTry(
  client: pg.Client,
  ledger: Ledger,
  attemptId: number,
  entry: LockTry,
): Promise<void> {
  await client.query(
    `UPDATE ${ledger.table("attempts")} SET tries = tries || jsonb_build_array($2::jsonb)
      WHERE id = $1 AND status = 'running'`,
    [attemptId, JSON.stringify(entry)],
  );
}
