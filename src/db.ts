// Database connections: connect with retries and backoff, name the session, explain failures
// in one sentence that never contains the password.

import pg from "pg";
import { DatabaseUnavailableError, UsageError } from "./errors.js";
import { formatDuration } from "./duration.js";

/** host:port/db as user, for messages; never includes the password. */
export function describeTarget(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.hostname || "localhost (socket)";
    const port = parsed.port || "5432";
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, "")) || "(default database)";
    const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : "";
    return `${user}${host}:${port}/${database}`;
  } catch {
    return "the configured database";
  }
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

/** One sentence for a connection failure; `tried` says how long we retried. */
export function explainConnectError(error: unknown, target: string, tried: string): string {
  const { code, message = "" } = error as PgLikeError;
  const host = target.replace(/^[^@]*@/, "").replace(/\/.*$/, "");
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
    case "53300":
      return `The server at ${host} had too many clients for ${tried}; raise max_connections or --connect-timeout, or use fewer connections.`;
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
    try {
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
      const budget = isServerBusy(error)
        ? Math.max(options.timeoutMs, options.busyTimeoutMs ?? 0)
        : options.timeoutMs;
      if (!isRetryableConnectError(error) || elapsed + delay >= budget || options.signal?.aborted) {
        throw new DatabaseUnavailableError(explainConnectError(error, target, formatDuration(elapsed)), {
          cause: error,
        });
      }
      options.onRetry?.(error, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}

/** Double-quotes an SQL identifier; the one place identifiers enter SQL text. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
