// Reads of the ledger for people: attempts with the processes that waited on them (status, history,
// the page), releases, live waiters, the metrics snapshot, and locks held with no attempt. Read-only
// SQL over the records built in attempts.ts and waiters.ts; a missing ledger reads as empty.

import type pg from "pg";
import { ATTEMPT_STATUSES, type AttemptWithFollowers, type FollowerRecord } from "../../core/records.js";
import { DURATION_BUCKETS_SECONDS, type MetricsSnapshot } from "../../core/metrics.js";
import { readLockHolders, type LockHolder } from "../session.js";
import { attemptJson } from "./attempts.js";
import { isReadable, readPresence } from "./schema.js";
import { followerOutcome, leaseEnd, triesOf, type Ledger } from "./sql.js";
import { followerJson, isMissingLedger } from "./waiters.js";

export interface HistoryFilter {
  /** A release id, or a prefix of one (the 7-character commit). */
  release?: string | undefined;
  /** The app that ran an attempt or waited on it. */
  app?: string | undefined;
  task?: string | undefined;
  /** Most recent attempts to return; default 20, at most 1000. */
  limit?: number | undefined;
  includeOutput?: boolean | undefined;
}

/** Empty when the ledger is missing (a fresh database, or another schema): nothing has run there. */
async function orEmpty<T>(read: () => Promise<T[]>): Promise<T[]> {
  try {
    return await read();
  } catch (error) {
    if (isMissingLedger(error)) return [];
    throw error;
  }
}

/** Attempts, newest first, each with the outcomes of the processes that waited on it. */
export function readAttempts(
  client: pg.Client,
  ledger: Ledger,
  filter: HistoryFilter = {},
): Promise<AttemptWithFollowers[]> {
  const limit = Math.max(1, Math.min(1000, filter.limit ?? 20));
  const followers = ledger.table("follower_outcomes");
  return orEmpty(async () => {
    const result = await client.query<{ attempt: AttemptWithFollowers }>(
      `SELECT (${attemptJson("a", { namespace: "$5", key: "$6" }, { outputTail: filter.includeOutput !== false })}::jsonb
               || jsonb_build_object('followers', (SELECT coalesce(json_agg(${followerJson("f")} ORDER BY f.id), '[]'::json)
                                                     FROM ${followers} f WHERE f.attempt_id = a.id))) AS attempt
         FROM ${ledger.table("attempts")} a
        WHERE ($1::text IS NULL OR a.release_id = $1 OR a.release_id LIKE $1 || '%')
          AND ($2::text IS NULL OR a.task = $2)
          AND ($3::text IS NULL OR a.app = $3
               OR a.id IN (SELECT attempt_id FROM ${followers} WHERE app = $3 AND attempt_id IS NOT NULL))
        ORDER BY a.id DESC
        LIMIT $4`,
      [
        filter.release ?? null,
        filter.task ?? null,
        filter.app ?? null,
        limit,
        ledger.key.namespace,
        ledger.key.key,
      ],
    );
    return result.rows.map((row) => row.attempt);
  });
}

/** The processes recorded as waiting now ("waiting", heartbeat fresh) or that stopped beating ("gone"), oldest first. */
export function readWaiters(client: pg.Client, ledger: Ledger): Promise<FollowerRecord[]> {
  return orEmpty(async () => {
    const result = await client.query<{ record: FollowerRecord }>(
      `SELECT ${followerJson("f")} AS record FROM ${ledger.table("follower_outcomes")} f
        WHERE f.outcome = 'waiting' ORDER BY f.id`,
    );
    return result.rows.map((row) => row.record);
  });
}

/** Outcomes of processes that waited on no attempt (skips, timeouts before any attempt), newest first. */
export function readUnattachedOutcomes(
  client: pg.Client,
  ledger: Ledger,
  limit = 500,
): Promise<FollowerRecord[]> {
  return orEmpty(async () => {
    const result = await client.query<{ record: FollowerRecord }>(
      `SELECT ${followerJson("f")} AS record FROM ${ledger.table("follower_outcomes")} f
        WHERE f.attempt_id IS NULL ORDER BY f.id DESC LIMIT $1`,
      [limit],
    );
    return result.rows.map((row) => row.record);
  });
}

/** Attempts by task and status with their durations, for /metrics (every status, zeros included). */
export async function readMetricsSnapshot(
  client: pg.Client,
  ledger: Ledger,
  lockName: string,
): Promise<MetricsSnapshot> {
  const holders = await readLockHolders(client, ledger.key);
  const rows = await orEmpty(async () => {
    const result = await client.query<{ snapshot: Omit<MetricsSnapshot, "lockName" | "lockHeld"> }>(
      `WITH tasks AS (SELECT DISTINCT task FROM ${ledger.table("attempts")}
                      UNION SELECT DISTINCT task FROM ${ledger.table("follower_outcomes")} WHERE outcome = 'waiting'),
            grid AS (SELECT t.task, s.status FROM tasks t CROSS JOIN unnest($1::text[]) AS s(status)),
            finished AS (SELECT a.task, a.status, a.duration_ms FROM ${ledger.table("attempts")} a
                          WHERE a.status <> 'running' AND a.duration_ms IS NOT NULL)
       SELECT json_build_object(
         'attempts', (SELECT coalesce(json_agg(json_build_object('task', g.task, 'status', g.status,
                        'count', (SELECT count(*) FROM ${ledger.table("attempts")} a WHERE a.task = g.task AND a.status = g.status))
                        ORDER BY g.task, g.status), '[]') FROM grid g),
         'lastSuccess', (SELECT coalesce(json_agg(json_build_object('task', task, 'seconds', seconds) ORDER BY task), '[]')
                           FROM (SELECT task, extract(epoch FROM max(finished_at))::float8 AS seconds
                                   FROM ${ledger.table("attempts")} WHERE status = 'succeeded' GROUP BY task) s),
         'leases', (SELECT coalesce(json_agg(json_build_object('task', t.task, 'held',
                      (SELECT count(*) FROM ${ledger.table("attempts")} a WHERE a.task = t.task AND a.status = 'running'
                          AND ${leaseEnd("a")} > clock_timestamp())) ORDER BY t.task), '[]') FROM tasks t),
         'waiters', (SELECT coalesce(json_agg(json_build_object('task', t.task, 'count',
                       (SELECT count(*) FROM ${ledger.table("follower_outcomes")} f WHERE f.task = t.task
                           AND f.outcome = 'waiting' AND ${followerOutcome("f")} = 'waiting')) ORDER BY t.task), '[]') FROM tasks t),
         'lockCancels', (SELECT coalesce(json_agg(json_build_object('task', t.task, 'count',
                           (SELECT coalesce(sum(jsonb_array_length(${triesOf("a")})), 0)::integer FROM ${ledger.table("attempts")} a
                             WHERE a.task = t.task)) ORDER BY t.task), '[]') FROM tasks t),
         'durations', (SELECT coalesce(json_agg(json_build_object('task', d.task, 'status', d.status,
                         'buckets', (SELECT json_agg((SELECT count(*) FROM finished x WHERE x.task = d.task
                                       AND x.status = d.status AND x.duration_ms <= le * 1000) ORDER BY le)
                                       FROM unnest($2::int[]) AS le),
                         'count', d.n, 'sumSeconds', d.sum_ms / 1000.0) ORDER BY d.task, d.status), '[]')
                         FROM (SELECT task, status, count(*) AS n, sum(duration_ms)::float8 AS sum_ms
                                 FROM finished GROUP BY task, status) d)) AS snapshot`,
      [ATTEMPT_STATUSES, DURATION_BUCKETS_SECONDS],
    );
    return result.rows.map((row) => row.snapshot);
  });
  const empty = { attempts: [], lastSuccess: [], leases: [], waiters: [], lockCancels: [], durations: [] };
  return { lockName, lockHeld: holders.length > 0, ...(rows[0] ?? empty) };
}

/**
 * Sessions that hold the lock without a running attempt that recorded them: a lock left on a pooled
 * server connection (0.1.0 through a transaction-mode pooler), or a leader's session that outlived
 * its attempt. Nothing waits on them any more; doctor names them so they can be ended.
 */
export async function readLeakedLocks(client: pg.Client, ledger: Ledger): Promise<LockHolder[]> {
  const holders = await readLockHolders(client, ledger.key);
  if (holders.length === 0 || !isReadable(await readPresence(client, ledger))) return holders;
  const owners = await client.query<{ pid: number }>(
    `SELECT lock_backend_pid AS pid FROM ${ledger.table("attempts")}
      WHERE status = 'running' AND lock_backend_pid IS NOT NULL`,
  );
  const owned = new Set(owners.rows.map((row) => row.pid));
  return holders.filter((holder) => !owned.has(holder.pid));
}
