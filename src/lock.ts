// The session-level advisory lock, taken only with pg_try_advisory_lock (never blocking, never in a
// transaction) and proven held by looking at pg_locks from the same session.

import type pg from "pg";
import { connect } from "./db.js";
import { UnsafeSetupError } from "./errors.js";
import type { LockKey } from "./lock-key.js";

/** SQL: does this session hold the lock whose two keys are the parameters $first and $first+1? */
export function heldByThisSession(first: number): string {
  return `EXISTS (SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
      AND classid = $${first}::bigint::oid AND objid = $${first + 1}::bigint::oid AND objsubid = 2)`;
}

/**
 * Tries the lock once. When the server says yes, a second statement checks that this session really
 * holds it: behind a transaction-mode pooler the second statement may run on another backend, and a
 * lock that a pooler hands around protects nothing.
 */
export async function tryLock(client: pg.Client, key: LockKey): Promise<number | undefined> {
  const attempt = await client.query<{ got: boolean; pid: number }>(
    "SELECT pg_try_advisory_lock($1, $2) AS got, pg_backend_pid() AS pid",
    [key.namespace, key.key],
  );
  const got = attempt.rows[0]?.got === true;
  if (!got) return undefined;
  const check = await client.query<{ held: boolean; pid: number }>(
    `SELECT ${heldByThisSession(1)} AS held, pg_backend_pid() AS pid`,
    [key.namespace, key.key],
  );
  const row = check.rows[0];
  if (row?.held !== true || row.pid !== attempt.rows[0]?.pid) {
    await releaseLeaked(client, key);
    throw new UnsafeSetupError(POOLER_MESSAGE);
  }
  return row.pid;
}

/**
 * Behind a pooler the lock stays with a pooled server connection after we leave, blocking every later
 * release: unlock until the backend this client lands on holds it no more (re-entrant counts included).
 */
async function releaseLeaked(client: pg.Client, key: LockKey): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const result = await client
      .query<{ released: boolean }>("SELECT pg_advisory_unlock($1, $2) AS released", [key.namespace, key.key])
      .catch(() => undefined);
    if (result?.rows[0]?.released !== true) return;
  }
}

const POOLER_MESSAGE =
  "The advisory lock did not stay with this session, so the connection goes through a transaction-mode pooler (such as PgBouncer); point RELEASE_DATABASE_URL at the direct database URL.";

/**
 * Opens the probe session of proveExclusive. A pooler assigns a server connection only at a client's
 * first query, so the probe may connect while the lock's client is busy; it must query only when that
 * client is idle, or the pooler has no reason to hand it our backend.
 */
export function openProbe(url: string, applicationName: string): Promise<pg.Client> {
  return connect({ url, applicationName, timeoutMs: 5000 });
}

/**
 * Proves that the lock belongs to this client alone: a second client through the same URL must land on
 * another backend and must not get the lock. Through a transaction-mode pooler it is handed the very
 * backend that holds our lock (poolers reuse the last released server connection), and "gets" it too.
 */
export async function proveExclusive(
  probing: Promise<pg.Client>,
  key: LockKey,
  lockBackendPid: number,
): Promise<void> {
  const probe = await probing;
  try {
    const result = await probe.query<{ pid: number; got: boolean }>(
      "SELECT pg_backend_pid() AS pid, pg_try_advisory_lock($1, $2) AS got",
      [key.namespace, key.key],
    );
    const row = result.rows[0];
    if (row === undefined || row.got || row.pid === lockBackendPid) {
      // The probe sits on a backend that holds the lock (ours, handed around): release all of it.
      if (row?.got === true || row?.pid === lockBackendPid) await releaseLeaked(probe, key);
      throw new UnsafeSetupError(POOLER_MESSAGE);
    }
  } finally {
    await probe.end().catch(() => {});
  }
}

export async function unlock(client: pg.Client, key: LockKey): Promise<boolean> {
  const result = await client.query<{ released: boolean }>("SELECT pg_advisory_unlock($1, $2) AS released", [
    key.namespace,
    key.key,
  ]);
  return result.rows[0]?.released === true;
}

export interface LockHolder {
  pid: number;
  applicationName: string | null;
  state: string | null;
  backendStart: string | null;
  stateChange: string | null;
  clientAddr: string | null;
}

/** Who holds the advisory lock now, with what pg_stat_activity says of that session. */
export async function readLockHolder(client: pg.Client, key: LockKey): Promise<LockHolder | undefined> {
  const result = await client.query<{
    pid: number;
    application_name: string | null;
    state: string | null;
    backend_start: Date | null;
    state_change: Date | null;
    client_addr: string | null;
  }>(
    `SELECT l.pid, a.application_name, a.state, a.backend_start, a.state_change, a.client_addr::text
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
        -- advisory locks are per database: the same key in another database is another lock
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      LIMIT 1`,
    [key.namespace, key.key],
  );
  const row = result.rows[0];
  if (row === undefined) return undefined;
  return {
    pid: row.pid,
    applicationName: row.application_name,
    state: row.state,
    backendStart: row.backend_start?.toISOString() ?? null,
    stateChange: row.state_change?.toISOString() ?? null,
    clientAddr: row.client_addr,
  };
}
