// The throwaway PostgreSQL side of the bench: servers from the test harness, one database per
// scenario owned by an ordinary (non-superuser) application role, a listener that timestamps the
// ledger's NOTIFYs, and a counting proxy that shows how many connections and round trips a run needs.

import { randomBytes } from "node:crypto";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { startPostgres, type PostgresServer } from "../../test/harness/postgres.js";
import { now } from "./processes.js";

/** The role every orchestrator and migration process connects as: apps are not superusers. */
const APP_ROLE = "bench_app";
/** The ledger schema's default name, which is also the NOTIFY channel. */
export const LEDGER_SCHEMA = "release_orchestrator";

export interface BenchServer {
  server: PostgresServer;
  version: string;
  maxConnections: number;
  appPassword: string;
  /** Runs one statement as the superuser on the database "postgres". */
  admin<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  createDatabase(label: string): Promise<BenchDatabase>;
  stop(): Promise<void>;
}

export interface BenchDatabase {
  name: string;
  /** The application role's URL (what the processes under test get as DATABASE_URL). */
  appUrl: string;
  /** The superuser's URL, for the bench's own observers. */
  adminUrl: string;
  query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** The same database, with the processes under test given `appUrl` (a pooler in front of it). */
export function throughPooler(db: BenchDatabase, appUrl: string): BenchDatabase {
  return {
    name: db.name,
    appUrl,
    adminUrl: db.adminUrl,
    query: (sql, params) => db.query(sql, params),
    close: () => db.close(),
  };
}

function withDatabase(url: string, database: string, user?: { name: string; password: string }): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  if (user !== undefined) {
    parsed.username = user.name;
    parsed.password = user.password;
  }
  return parsed.toString();
}

export async function openClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: "release-orchestrator bench" });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

export async function startBenchServer(maxConnections: number): Promise<BenchServer> {
  const server = await startPostgres({ maxConnections });
  const adminClient = await openClient(server.adminUrl);
  const appPassword = randomBytes(12).toString("hex");
  await adminClient.query(`CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '${appPassword}'`);
  const version = (await adminClient.query<{ v: string }>("SELECT current_setting('server_version') AS v"))
    .rows[0]?.v;
  const open: BenchDatabase[] = [];
  let counter = 0;
  const admin = async <T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]> =>
    (await adminClient.query<T>(sql, params)).rows;
  return {
    server,
    version: version ?? "?",
    maxConnections,
    appPassword,
    admin,
    async createDatabase(label) {
      const name = `bench_${label.replace(/[^a-z0-9_]/g, "_")}_${++counter}`;
      await admin(`CREATE DATABASE ${name} OWNER ${APP_ROLE}`);
      const adminUrl = withDatabase(server.adminUrl, name);
      const pool = new pg.Pool({ connectionString: adminUrl, max: 2 });
      pool.on("error", () => undefined);
      const db: BenchDatabase = {
        name,
        adminUrl,
        appUrl: withDatabase(server.adminUrl, name, { name: APP_ROLE, password: appPassword }),
        query: async <T extends pg.QueryResultRow>(sql: string, params?: unknown[]) =>
          (await pool.query<T>(sql, params)).rows,
        close: () => pool.end(),
      };
      open.push(db);
      return db;
    },
    async stop() {
      await Promise.all(open.map((db) => db.close().catch(() => undefined)));
      await adminClient.end().catch(() => undefined);
      await server.stop();
    },
  };
}

/**
 * The database clock minus the bench's clock, in ms: both read the machine's clock, but the bench's
 * now() runs on a monotonic clock from its start. The query with the shortest round trip wins.
 */
export async function clockOffset(db: BenchDatabase, samples = 5): Promise<number> {
  let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 };
  for (let i = 0; i < samples; i++) {
    const before = now();
    const rows = await db.query<{ ms: number }>("SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms");
    const after = now();
    if (after - before < best.rtt)
      best = { rtt: after - before, offset: Number(rows[0]?.ms) - (before + after) / 2 };
  }
  return best.offset;
}

export interface LedgerEvent {
  event: string;
  attempt: number;
  release: string | null;
  status?: string;
  /** When the bench received it: the commit has happened by then. */
  at: number;
}

/** LISTENs on the ledger's channel and timestamps every event the moment it arrives. */
export interface LedgerListener {
  events: LedgerEvent[];
  /** Resolves with the first event that satisfies `test`, including one already received. */
  next(test: (event: LedgerEvent) => boolean, timeoutMs: number): Promise<LedgerEvent>;
  close(): Promise<void>;
}

export async function listenLedger(url: string): Promise<LedgerListener> {
  const client = await openClient(url);
  const events: LedgerEvent[] = [];
  const waiters = new Set<(event: LedgerEvent) => void>();
  client.on("notification", (message) => {
    const at = now();
    try {
      const payload = JSON.parse(message.payload ?? "{}") as Omit<LedgerEvent, "at">;
      const event = { ...payload, at };
      events.push(event);
      for (const waiter of waiters) waiter(event);
    } catch {
      // not one of ours
    }
  });
  await client.query(`LISTEN ${LEDGER_SCHEMA}`);
  return {
    events,
    next(test, timeoutMs) {
      const seen = events.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching ledger NOTIFY within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = (event: LedgerEvent): void => {
          if (!test(event)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(event);
        };
        waiters.add(waiter);
      });
    },
    close: () => client.end(),
  };
}

export interface ProxyStats {
  connections: number;
  /** Per connection: the statements (SQL text) the client sent, in order, one per round trip. */
  statements: string[][];
  /** Per connection: round trips after authentication (one per simple Query or Sync). */
  roundTrips: number[];
}

/**
 * A TCP proxy in front of the server that reads the client's side of the wire protocol: it counts
 * connections and round trips (a simple Query, or an extended-protocol batch ending in Sync) and keeps
 * the SQL of each. Only for counting: timings are never taken through it.
 */
export async function startCountingProxy(
  targetPort: number,
): Promise<{ port: number; stats: ProxyStats; close(): Promise<void> }> {
  const stats: ProxyStats = { connections: 0, statements: [], roundTrips: [] };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const index = stats.connections++;
    stats.statements[index] = [];
    stats.roundTrips[index] = 0;
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    sockets.add(client).add(upstream);
    client.on("close", () => sockets.delete(client));
    upstream.on("close", () => sockets.delete(upstream));
    let buffer = Buffer.alloc(0);
    let started = false;
    let pendingSql: string[] = [];
    client.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8) break;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) break;
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(length);
          // SSLRequest / GSSENCRequest are answered with one byte, then the real startup follows.
          if (code !== 80877103 && code !== 80877104) started = true;
          continue;
        }
        if (buffer.length < 5) break;
        const type = String.fromCharCode(buffer[0] ?? 0);
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) break;
        const body = buffer.subarray(5, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (type === "Q") {
          stats.roundTrips[index] = (stats.roundTrips[index] ?? 0) + 1;
          stats.statements[index]?.push(cString(body, 0).text);
        } else if (type === "P") {
          const name = cString(body, 0);
          pendingSql.push(cString(body, name.next).text);
        } else if (type === "S") {
          stats.roundTrips[index] = (stats.roundTrips[index] ?? 0) + 1;
          stats.statements[index]?.push(pendingSql.join("; ") || "(prepared statement)");
          pendingSql = [];
        }
      }
    });
    client.pipe(upstream).pipe(client);
    const destroy = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", destroy);
    upstream.on("error", destroy);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function cString(buffer: Buffer, start: number): { text: string; next: number } {
  const end = buffer.indexOf(0, start);
  const stop = end === -1 ? buffer.length : end;
  return { text: buffer.toString("utf8", start, stop), next: stop + 1 };
}

/** The database URL with its port replaced (to go through the proxy). */
export function viaPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.toString();
}
