// The server around the ledger: whether a session is proven to be our own, the session-level advisory
// lock (only on such a session: a signal that a leader's session died, never what decides ownership,
// which is the ledger's lease) and who holds it, LISTEN, how full the server is, ending sessions.

import type { Socket } from "node:net";
import pg from "pg";
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

/** Releases the lock once; false when this session did not hold it. Bounded by `timeoutMs` if given. */
export async function unlock(client: pg.Client, key: LockKey, timeoutMs?: number): Promise<boolean> {
  const result = await client.query<{ released: boolean }>({
    text: "SELECT pg_advisory_unlock($1, $2) AS released",
    values: [key.namespace, key.key],
    ...(timeoutMs === undefined ? {} : { query_timeout: timeoutMs }),
  });
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

/** Listens on the ledger's NOTIFY channel (attempts starting and ending). */
export async function listen(client: pg.Client, channel: string): Promise<void> {
  await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
}

/**
 * How full the server is. More than half of max_connections in use counts as crowded: waiters then
 * give their connection back between polls, so that the leader's command can still connect.
 */
export async function readCrowding(
  client: pg.Client,
): Promise<{ used: number; max: number; crowded: boolean }> {
  const result = await client.query<{ used: number; max: number }>(
    "SELECT count(*)::int AS used, current_setting('max_connections')::int AS max FROM pg_stat_activity",
  );
  const { used = 0, max = 0 } = result.rows[0] ?? {};
  return { used, max, crowded: used * 2 > max };
}

/** Ends sessions (a dead leader's command's, with --orphan-sessions terminate). */
export async function terminateSessions(client: pg.Client, pids: readonly number[]): Promise<void> {
  await client.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
}
