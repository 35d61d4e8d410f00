// Database connections: connect with retries and backoff, name the session, explain failures
// in one sentence that never contains the password.

import pg from "pg";
import { parseDatabaseUrl, type Config } from "../core/config.js";
import { DatabaseUnavailableError, UsageError } from "../core/errors.js";
import { formatDuration } from "../core/duration.js";

/**
 * Where a URL connects, for messages: `host:port`, or `/dir/.s.PGSQL.port` for a Unix socket (a host
 * that is a directory, in the URL or its `host` parameter). node-postgres uses localhost for no host.
 */
function whereOf(host: string, port: string): string {
  const number = port || "5432";
  if (host.startsWith("/")) return `${host.replace(/\/+$/, "")}/.s.PGSQL.${number}`;
  return `${host || "localhost"}:${number}`;
}

/** user@host:port/db (or user@/socket/.s.PGSQL.5432/db), for messages; never includes the password. */
export function describeTarget(url: string): string {
  const parsed = parseDatabaseUrl(url);
  if (parsed === undefined) return "the configured database";
  const database = parsed.database || "(default database)";
  const user = parsed.user ? `${parsed.user}@` : "";
  return `${user}${whereOf(parsed.host, parsed.port)}/${database}`;
}

/** application_name is limited to 63 bytes; keep it readable in pg_stat_activity. */
export function applicationName(parts: readonly string[]): string {
  const name = ["release-orchestrator", ...parts].join(" ");
  return Buffer.byteLength(name) <= 63
    ? name
    : Buffer.from(name)
        .subarray(0, 63)
        .toString("utf8")
        .replace(/\uFFFD+$/, "");
}

interface PgLikeError {
  code?: string;
  message?: string;
}

const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EPIPE",
  "53300", // too_many_connections
  "53400", // configuration_limit_exceeded
  "57P03", // cannot_connect_now: the database system is starting up / shutting down
  "57P01", // admin_shutdown
  "08006",
  "08001",
  "08004",
]);

export function isRetryableConnectError(error: unknown): boolean {
  const { code, message = "" } = error as PgLikeError;
  if (code !== undefined && RETRYABLE_CODES.has(code)) return true;
  return /Connection terminated|timeout expired|connection timeout|too many clients|starting up/i.test(
    message,
  );
}

/** The server answered but cannot take us now: too many clients, or starting up. */
export function isServerBusy(error: unknown): boolean {
  const { code, message = "" } = error as PgLikeError;
  return code === "53300" || code === "57P03" || /too many clients|starting up/i.test(message);
}

/** An error that means the session is gone (server restart, terminated backend, cut network). */
export function isConnectionLoss(error: unknown): boolean {
  const { code, message = "" } = error as PgLikeError;
  if (code === "57P01" || code === "57P02" || code === "57P03") return true;
  return (
    isRetryableConnectError(error) ||
    /not queryable|Connection terminated|terminating connection|ECONNRESET|EPIPE/i.test(message)
  );
}

/**
 * One sentence for a connection failure; `tried` says how long we retried, `busyBound` which option
 * bounded the retries against a server that answered but was full ("--connect-timeout" by default).
 */
export function explainConnectError(
  error: unknown,
  target: string,
  tried: string,
  busyBound = "--connect-timeout",
): string {
  const { code, message = "" } = error as PgLikeError;
  // The target is user@where/database; a socket's where holds slashes itself.
  const where = target.replace(/^[^@]*@/, "").replace(/\/[^/]*$/, "");
  const host = where.startsWith("/") ? `the socket ${where}` : where;
  switch (code) {
    case "28P01":
      return `Password authentication failed for ${target}; check the user and password in the database URL.`;
    case "28000":
      return `The server refused ${target} (${message}); check the user, pg_hba.conf and the sslmode in the database URL (Heroku Postgres requires TLS: set PGSSLMODE=no-verify).`;
    case "3D000":
      return `The database in ${target} does not exist; check the database name in the database URL.`;
    case "42501":
      return `The user in ${target} may not connect (${message}); grant it CONNECT on the database.`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `The database host ${host} could not be resolved (tried for ${tried}); check the host in the database URL.`;
    case "ECONNREFUSED":
      return `Nothing accepted connections at ${host} (tried for ${tried}); check that PostgreSQL is running and the host and port in the database URL.`;
    case "ENOENT":
      return `There is no PostgreSQL socket at ${where} (tried for ${tried}); check that PostgreSQL is running and the socket directory (host) and port in the database URL.`;
    case "53300":
      return /for role/i.test(message)
        ? `The user in ${target} reached its connection limit (${message}) and stayed there for ${tried}, as long as ${busyBound} allows; raise the role's CONNECTION LIMIT, use fewer connections, or raise ${busyBound}.`
        : `The server at ${host} had too many clients for ${tried}, as long as ${busyBound} allows; raise max_connections, use fewer connections (a pooler for the app), or raise ${busyBound}.`;
    case "57P03":
      return `The server at ${host} was still starting up or shutting down after ${tried}; retry the release when it is up.`;
    default:
      return `Could not connect to ${target} (${message || code || "unknown error"}; tried for ${tried}); check the database URL and that the server is reachable.`;
  }
}

export interface ConnectOptions {
  url: string;
  applicationName: string;
  /** Total time to keep retrying failures that may pass (refused connections, DNS, network). */
  timeoutMs: number;
  /**
   * Total time to keep retrying when the server is there but busy ("too many clients", "starting up");
   * defaults to timeoutMs. Waiters pass their wait timeout: a crowded server is worth waiting for.
   */
  busyTimeoutMs?: number;
  /** Called before each retry, for debug output. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
  /** PGSSLMODE as the user set it, .env included (node-postgres itself only sees the real environment). */
  sslMode?: string | undefined;
  /** The option named in the exit-69 advice for a server that stayed full; see connectionSettings. */
  busyTimeoutOption?: string;
}

/** What every connection of one process shares, built from the config in one place. */
export interface ConnectionSettings {
  url: string;
  timeoutMs: number;
  /** A full server ("too many clients") or one starting up is retried this long (see --connect-timeout). */
  busyTimeoutMs: number;
  busyTimeoutOption: string;
  sslMode: string | undefined;
}

/**
 * The one builder of connection settings, used by run, its probe, status, history, doctor and serve:
 * the URL, PGSSLMODE as the config resolved it (environment, then .env) and the timeouts. `run` waits
 * for a full server as long as it would wait for the lock or the leader (--wait-timeout); the
 * operator commands only for --connect-timeout. Spread it into connect() with an applicationName.
 */
export function connectionSettings(
  config: Pick<Config, "databaseUrl" | "connectTimeoutMs" | "waitTimeoutMs" | "sslMode">,
  purpose: "run" | "inspect" = "inspect",
): ConnectionSettings {
  if (config.databaseUrl === undefined) {
    throw new UsageError(
      "No database configured: set DATABASE_URL (or RELEASE_DATABASE_URL, or --database-url).",
    );
  }
  const waits = purpose === "run" && config.waitTimeoutMs > config.connectTimeoutMs;
  return {
    url: config.databaseUrl,
    timeoutMs: config.connectTimeoutMs,
    busyTimeoutMs: waits ? config.waitTimeoutMs : config.connectTimeoutMs,
    busyTimeoutOption: waits ? "--wait-timeout" : "--connect-timeout",
    sslMode: config.sslMode,
  };
}

/** The same settings for a pg.Pool or pg.Client built directly (the status page's pool). */
export function pgClientConfig(settings: ConnectionSettings): pg.ClientConfig {
  const ssl = sslFromMode(settings.url, settings.sslMode);
  return { connectionString: settings.url, ...(ssl === undefined ? {} : { ssl }) };
}

/** node-postgres' reading of PGSSLMODE, for a value that may come from .env; undefined leaves pg's default. */
export function sslFromMode(
  url: string,
  mode: string | undefined,
): boolean | { rejectUnauthorized: false } | undefined {
  if (mode === undefined || mode === "") return undefined;
  try {
    if (new URL(url).searchParams.has("sslmode")) return undefined; // the URL says it; pg reads it there
  } catch {
    return undefined;
  }
  if (mode === "disable" || mode === "allow") return false;
  if (mode === "no-verify") return { rejectUnauthorized: false };
  return true;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

/**
 * How long to wait before the next connection try, or undefined to give up. A wait never runs past the
 * budget, and the last try is made when the budget ends: giving up as soon as the next wait would
 * cross it made `doctor --connect-timeout 2s` stop after 1 s and say "tried for 1 s".
 */
export function nextTryIn(elapsedMs: number, delayMs: number, budgetMs: number): number | undefined {
  if (elapsedMs >= budgetMs) return undefined;
  return Math.min(delayMs, budgetMs - elapsedMs);
}

/** Opens a dedicated client, retrying with exponential backoff and full jitter within `timeoutMs`. */
export async function connect(options: ConnectOptions): Promise<pg.Client> {
  const started = Date.now();
  const target = describeTarget(options.url);
  const ssl = sslFromMode(options.url, options.sslMode);
  for (let attempt = 1; ; attempt++) {
    const remaining = options.timeoutMs - (Date.now() - started);
    const client = new pg.Client({
      connectionString: options.url,
      application_name: options.applicationName,
      connectionTimeoutMillis: Math.max(1000, Math.min(10_000, remaining > 0 ? remaining : 10_000)),
      keepAlive: true,
      ...(ssl === undefined ? {} : { ssl }),
    });
    // An idle client whose server goes away emits 'error'; without a listener Node would crash.
    client.on("error", () => {});
    // An abort ends a connection still being made at once: on a silent network it would otherwise
    // keep the process alive until connectionTimeoutMillis, after its run has ended.
    const abort = () => destroySocket(client);
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      if (options.signal?.aborted) throw new Error("aborted before connecting");
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => {});
      if (error instanceof TypeError || (error as PgLikeError).code === "ERR_INVALID_URL") {
        throw new UsageError(
          "The database URL could not be parsed; write it as postgres://user:password@host:5432/dbname.",
        );
      }
      const elapsed = Date.now() - started;
      const delay = Math.random() * Math.min(5000, 200 * 2 ** Math.min(attempt, 10));
      const busyBudget = Math.max(options.timeoutMs, options.busyTimeoutMs ?? 0);
      const budget = isServerBusy(error) ? busyBudget : options.timeoutMs;
      const wait = nextTryIn(elapsed, delay, budget);
      if (!isRetryableConnectError(error) || wait === undefined || options.signal?.aborted) {
        const bound =
          options.busyTimeoutOption ??
          (busyBudget > options.timeoutMs ? "--wait-timeout" : "--connect-timeout");
        throw new DatabaseUnavailableError(
          explainConnectError(error, target, formatDuration(elapsed), bound),
          {
            cause: error,
          },
        );
      }
      options.onRetry?.(error, attempt, wait);
      await sleep(wait, options.signal);
    } finally {
      options.signal?.removeEventListener("abort", abort);
    }
  }
}

/** Destroys a pg client's socket (pg keeps it on its connection): ends a connection that never answers, at once. */
export function destroySocket(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Double-quotes an SQL identifier; the one place identifiers enter SQL text. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
