// The session-level advisory lock, taken only with pg_try_advisory_lock (never blocking, never in a
// transaction) and proven held by looking at pg_locks from the same session.

import type pg from "pg";
import { UnsafeSetupError } from "./errors.js";
import type { LockKey } from "./lock-key.js";

const HELD_BY_ME = `EXISTS (SELECT 1 FROM pg_locks
  WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
    AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2)`;

/**
 * Tries the lock once. When the server says yes, a second statement checks that this session really
 * holds it: behind a transaction-mode pooler the second statement may run on another backend, and a
 * lock that a pooler hands around protects nothing.
 */
export async function tryLock(client: pg.Client, key: LockKey): Promise<boolean> {
  const attempt = await client.query<{ got: boolean; pid: number }>(
    "SELECT pg_try_advisory_lock($1, $2) AS got, pg_backend_pid() AS pid",
    [key.namespace, key.key],
  );
  const got = attempt.rows[0]?.got === true;
  if (!got) return false;
  const check = await client.query<{ held: boolean; pid: number }>(
    `SELECT ${HELD_BY_ME} AS held, pg_backend_pid() AS pid`,
    [key.namespace, key.key],
  );
  const row = check.rows[0];
  if (row?.held !== true || row.pid !== attempt.rows[0]?.pid) {
    throw new UnsafeSetupError(
      "The advisory lock did not stay with this session, so the connection goes through a transaction-mode pooler (such as PgBouncer); point RELEASE_DATABASE_URL at the direct database URL.",
    );
  }
  return true;
}

export async function unlock(client: pg.Client, key: LockKey): Promise<boolean> {
  const result = await client.query<{ released: boolean }>("SELECT pg_advisory_unlock($1, $2) AS released", [
    key.namespace,
    key.key,
  ]);
  return result.rows[0]?.released === true;
}
