// The session-level advisory lock, used only where a session is proven to be our own: a signal (a
// leader's session died; who holds the lock now), never what decides ownership, which is the ledger's
// lease. Also the proof itself, and what status and doctor read of locks.

import type { Socket } from "node:net";
import type pg from "pg";
import { quoteIdent } from "./connect.js";
import type { LockKey } from "../core/lock-key.js";

/**
 * Proves that this client talks to its own PostgreSQL backend, with no pooler in between: the server
 * sees the very connection this socket is (client address and port, server address and port), or,
 * over a Unix socket, the socket is the server's own. A pooler's backend sees the pooler's connection
 * instead, so the proof fails (safely) behind any pooler, NAT or proxy; it never depends on timing.
 */
export async function provesOwnSession(client: pg.Client): Promise<boolean> {
  const internals = client as unknown as { connection?: { stream?: Socket }; host?: string; port?: number };
  const socket = internals.connection?.stream;
  const result = await client.query<{
    client_addr: string | null;
    client_port: number | null;
    server_addr: string | null;
    server_port: number | null;
    port: string;
  }>(
    `SELECT client_addr::text AS client_addr, client_port, host(inet_server_addr()) AS server_addr,
            inet_server_port() AS server_port, current_setting('port') AS port
       FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
  );
  const row = result.rows[0];
  if (row === undefined || socket === undefined) return false;
  if (socket.remoteAddress === undefined) {
    // A Unix socket: ours if it is in one of the server's socket directories, on the server's port.
    // pg_settings shows the directories only to privileged roles; without them, nothing is proven.
    const dirs = await client.query<{ setting: string }>(
      "SELECT setting FROM pg_settings WHERE name = 'unix_socket_directories'",
    );
    const list = (dirs.rows[0]?.setting ?? "").split(",").map((d) => d.trim());
    return (
      row.client_addr === null && list.includes(internals.host ?? "") && String(internals.port) === row.port
    );
  }
  const same = (a: string | null | undefined, b: string | null | undefined) =>
    a != null && b != null && normalise(a) === normalise(b);
  return (
    same(row.client_addr?.replace(/\/\d+$/, ""), socket.localAddress) &&
    row.client_port === socket.localPort &&
    same(row.server_addr, socket.remoteAddress) &&
    row.server_port === socket.remotePort
  );
}

function normalise(address: string): string {
  return address.replace(/^::ffff:/i, "").toLowerCase();
}

/** Releases the lock once; false when this session did not hold it. */
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

/** Every session holding the advisory lock now, with what pg_stat_activity says of it. */
export async function readLockHolders(client: pg.Client, key: LockKey): Promise<LockHolder[]> {
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
      ORDER BY l.pid`,
    [key.namespace, key.key],
  );
  return result.rows.map((row) => ({
    pid: row.pid,
    applicationName: row.application_name,
    state: row.state,
    backendStart: row.backend_start?.toISOString() ?? null,
    stateChange: row.state_change?.toISOString() ?? null,
    clientAddr: row.client_addr,
  }));
}

/** Who holds the advisory lock now, if anyone. */
export async function readLockHolder(client: pg.Client, key: LockKey): Promise<LockHolder | undefined> {
  return (await readLockHolders(client, key))[0];
}

/**
 * Sessions that hold the lock without a running attempt that recorded them: a lock left on a pooled
 * server connection (0.1.0 through a transaction-mode pooler), or a leader's session that outlived
 * its attempt. Nothing waits on them any more; doctor names them so they can be ended.
 */
export async function readLeakedLocks(
  client: pg.Client,
  key: LockKey,
  schema: string,
): Promise<LockHolder[]> {
  const quotedSchema = quoteIdent(schema);
  const holders = await readLockHolders(client, key);
  if (holders.length === 0) return [];
  const exists = await client.query<{ present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = 'attempts' AND has_schema_privilege(n.oid, 'USAGE')) AS present`,
    [schema],
  );
  if (exists.rows[0]?.present !== true) return holders;
  const owners = await client.query<{ pid: number }>(
    `SELECT lock_backend_pid AS pid FROM ${quotedSchema}.attempts WHERE status = 'running' AND lock_backend_pid IS NOT NULL`,
  );
  const owned = new Set(owners.rows.map((row) => row.pid));
  return holders.filter((holder) => !owned.has(holder.pid));
}
