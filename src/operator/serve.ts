// `serve`: the release status page (GET /), the same data as JSON (GET /api/releases), metrics for
// Prometheus (GET /metrics) and a health check (GET /healthz), on PORT. With RELEASE_SERVE_TOKEN every
// route but /healthz needs it (serve-access.ts); beyond loopback the token is required. The ledger is
// read through a small pool that reconnects by itself, so the page keeps working across a database
// restart; nothing it serves carries the password or the token.

import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import type { Config } from "../core/config.js";
import {
  applicationName,
  connectionSettings,
  describeTarget,
  explainConnectError,
  isConnectionLoss,
  pgClientConfig,
} from "../db/connect.js";
import { formatDuration } from "../core/duration.js";
import { UsageError } from "../core/errors.js";
import { readReleases, type ReleaseRecord } from "../db/ledger/reads.js";
import { readLockHolder } from "../db/session.js";
import { deriveLockKey } from "../core/lock-key.js";
import { formatMetrics, METRICS_CONTENT_TYPE, readMetrics } from "../core/metrics.js";
import type { Reporter } from "../core/reporter.js";
import { AUTH_CHALLENGE, checkServeAccess, createAuthorizer } from "./serve-access.js";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "./serve-page.js";

export interface ServeOptions {
  config: Config;
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM: the server closes and the promise resolves. */
  signal: AbortSignal;
}

/** What GET /api/releases returns, and what the page renders. */
export interface ReleasesResponse {
  /** The ledger's schema. */
  schema: string;
  /** At most this many attempts, newest first, grouped into releases. */
  limit: number;
  /** Who holds the release lock now (null: nobody). */
  lock: {
    name: string;
    holder: { pid: number; applicationName: string | null; since: string | null } | null;
  };
  /** Newest release first; see ReleaseRecord in history.ts. */
  releases: ReleaseRecord[];
}

export const MAX_LIMIT = 1000;

/** `?limit=`: a whole number from 1 to MAX_LIMIT, or the configured default when absent. */
export function parseLimit(value: string | null, fallback: number): number | { error: string } {
  if (value === null || value === "") return Math.min(fallback, MAX_LIMIT);
  if (!/^[1-9]\d{0,3}$/.test(value) || Number(value) > MAX_LIMIT) {
    return { error: `limit must be a whole number from 1 to ${MAX_LIMIT}` };
  }
  return Number(value);
}

/** Serves until `signal` aborts, then closes the server and the pool. */
export async function serveReleases(options: ServeOptions): Promise<void> {
  const { config, reporter, signal } = options;
  const status = createStatusServer(config, reporter);
  try {
    const address = await listen(status.server, config.port, config.host);
    const shown = ["0.0.0.0", "::"].includes(address.address) ? "localhost" : address.address;
    const host = shown.includes(":") ? `[${shown}]` : shown;
    const access =
      config.serveToken === undefined
        ? "no credentials: loopback only"
        : "RELEASE_SERVE_TOKEN required, as a bearer token or the basic auth password";
    reporter.info(
      `release status page on http://${host}:${address.port}/ (listening on ${config.host}:${address.port}; ${access}; also /api/releases, /metrics and /healthz)`,
      { event: "serving", port: address.port },
    );
    if (!signal.aborted) {
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    }
  } finally {
    await status.close();
  }
}

interface StatusServer {
  server: Server;
  close(): Promise<void>;
}

/** The HTTP server and its pool, not yet listening; throws UsageError when it may not serve (see checkServeAccess). */
export function createStatusServer(config: Config, reporter: Reporter): StatusServer {
  if (config.databaseUrl === undefined) throw new UsageError("No database configured: set DATABASE_URL.");
  const token = checkServeAccess(config);
  reporter.addSecret(token);
  const authorized = createAuthorizer(token);
  const ledger = createLedgerReader(config, reporter);
  const server = createServer((request, response) => {
    handle(request, response, config, ledger, authorized).catch((error: unknown) => {
      reporter.error(`status page: unexpected failure answering a request: ${(error as Error).message}`);
      if (!response.headersSent)
        send(response, request, 500, "text/plain; charset=utf-8", "internal error\n");
      else response.destroy();
    });
  });
  // Slow or idle clients must not keep the process from stopping, nor hold sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  let closing: Promise<void> | undefined;
  return {
    server,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await ledger.end();
      })()),
  };
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(listenError(error, port, host));
    };
    const onListening = () => {
      server.off("error", onError);
      resolve(server.address() as AddressInfo);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}

function listenError(error: NodeJS.ErrnoException, port: number, host: string): Error {
  switch (error.code) {
    case "EADDRINUSE":
      return new UsageError(
        `Port ${port} on ${host} is already in use; stop the other server or choose another port with --port or PORT.`,
      );
    case "EACCES":
      return new UsageError(
        `This process may not listen on port ${port}; choose a port above 1023 with --port or PORT.`,
      );
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
      return new UsageError(
        `${host} is not an address of this machine; use --host 0.0.0.0 (all addresses) or one of its own addresses.`,
      );
    default:
      return error;
  }
}

// ------------------------------------------------------------------------------------------- routes

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const ROUTES = ["/", "/api/releases", "/metrics", "/healthz"];

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  config: Config,
  ledger: LedgerReader,
  authorized: (authorization: string | undefined) => boolean,
): Promise<void> {
  let url: URL;
  try {
    url = new URL(request.url ?? "/", "http://status.invalid");
  } catch {
    send(response, request, 400, "text/plain; charset=utf-8", "bad request: the URL could not be parsed\n");
    return;
  }
  // Only /healthz is open (it says up or down, nothing else); strangers learn nothing, not even the routes.
  if (url.pathname !== "/healthz" && !authorized(request.headers.authorization)) {
    response.setHeader("www-authenticate", AUTH_CHALLENGE);
    send(
      response,
      request,
      401,
      "text/plain; charset=utf-8",
      "unauthorized: send Authorization: Bearer <RELEASE_SERVE_TOKEN>, or basic auth with the token as the password\n",
    );
    return;
  }
  const route = ROUTES.includes(url.pathname) ? url.pathname : undefined;
  if (route === undefined) {
    send(
      response,
      request,
      404,
      "text/plain; charset=utf-8",
      "not found: this server answers GET /, /api/releases, /metrics and /healthz\n",
    );
    return;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("allow", "GET, HEAD");
    send(response, request, 405, "text/plain; charset=utf-8", "method not allowed: use GET\n");
    return;
  }
  switch (route) {
    case "/":
      response.setHeader("content-security-policy", STATUS_PAGE_CSP);
      send(response, request, 200, "text/html; charset=utf-8", STATUS_PAGE_HTML);
      return;
    case "/healthz": {
      // Open to anyone: up (the database answers) or down, and nothing else.
      const health = await ledger.ping();
      send(
        response,
        request,
        health.ok ? 200 : 503,
        "text/plain; charset=utf-8",
        health.ok ? "up\n" : "down\n",
      );
      return;
    }
    case "/metrics": {
      const body = await ledger.metrics();
      if (body === undefined) {
        send(
          response,
          request,
          503,
          "text/plain; charset=utf-8",
          "The database does not answer; retrying. The server log says why.\n",
        );
        return;
      }
      send(response, request, 200, METRICS_CONTENT_TYPE, body);
      return;
    }
    case "/api/releases": {
      const limit = parseLimit(url.searchParams.get("limit"), config.limit);
      if (typeof limit !== "number") {
        send(response, request, 400, "application/json", `${JSON.stringify({ error: limit.error })}\n`);
        return;
      }
      const body = await ledger.read(limit);
      if (body === undefined) {
        send(
          response,
          request,
          503,
          "application/json",
          `${JSON.stringify({ error: "The database does not answer; retrying. The server log says why." })}\n`,
        );
        return;
      }
      const etag = `W/"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
      response.setHeader("etag", etag);
      if (request.headers["if-none-match"] === etag) {
        send(response, request, 304, undefined, "");
        return;
      }
      send(response, request, 200, "application/json", body);
      return;
    }
  }
}

function send(
  response: ServerResponse,
  request: IncomingMessage,
  status: number,
  contentType: string | undefined,
  body: string,
): void {
  response.statusCode = status;
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
  // The page and its data change with every release: always revalidate (the ETag makes that cheap).
  response.setHeader("cache-control", "no-cache");
  if (contentType !== undefined) response.setHeader("content-type", contentType);
  if (status !== 304) response.setHeader("content-length", Buffer.byteLength(body));
  response.end(request.method === "HEAD" || status === 304 ? undefined : body);
}

// ------------------------------------------------------------------------------------------- ledger

interface LedgerReader {
  /** The JSON body of /api/releases, or undefined when the database does not answer. */
  read(limit: number): Promise<string | undefined>;
  /** The /metrics body, or undefined when the database does not answer. */
  metrics(): Promise<string | undefined>;
  ping(): Promise<{ ok: true; ms: number } | { ok: false }>;
  end(): Promise<void>;
}

/**
 * Reads through a pool of at most 2 sessions. pg.Pool drops a session that errors (a restarted or
 * terminated backend) and opens a new one on the next request; a query that fails because its pooled
 * session died is retried once on a fresh one, so a database restart costs no failed request.
 */
function createLedgerReader(config: Config, reporter: Reporter): LedgerReader {
  const url = config.databaseUrl ?? "";
  const target = describeTarget(url);
  const pool = new pg.Pool({
    ...pgClientConfig(connectionSettings(config)),
    application_name: applicationName(["serve"]),
    max: 2,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: Math.max(1000, Math.min(config.connectTimeoutMs, 5000)),
    statement_timeout: 10_000,
    query_timeout: 15_000,
    keepAlive: true,
  });
  // An idle pooled session whose server goes away emits 'error'; the pool drops it. Nothing to do here.
  pool.on("error", () => {});
  const key = deriveLockKey(config.lockName);
  const inFlight = new Map<number, Promise<string | undefined>>();
  let answering: boolean | undefined;

  /** Logs once when the database stops answering and once when it answers again; never the password. */
  const track = (error: unknown, startedMs: number): void => {
    if (error === undefined) {
      if (answering === false) reporter.info("status page: the database answers again.");
      answering = true;
      return;
    }
    if (answering !== false) {
      const why = isConnectionLoss(error)
        ? explainConnectError(error, target, formatDuration(Date.now() - startedMs))
        : `Reading the ledger in ${target} failed: ${(error as Error).message}.`;
      reporter.warn(`status page: ${why} The page shows it and retries by itself.`);
    }
    answering = false;
  };

  async function withPooledClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      try {
        const result = await fn(client);
        client.release();
        return result;
      } catch (error) {
        client.release(true);
        if (attempt === 1 && isConnectionLoss(error)) continue;
        throw error;
      }
    }
  }

  async function readBody(limit: number): Promise<string | undefined> {
    const started = Date.now();
    try {
      const payload = await withPooledClient(async (client): Promise<ReleasesResponse> => {
        const releases = await readReleases(client, config.schema, { limit });
        const holder = await readLockHolder(client, key);
        return {
          schema: config.schema,
          limit,
          lock: {
            name: config.lockName,
            holder:
              holder === undefined
                ? null
                : { pid: holder.pid, applicationName: holder.applicationName, since: holder.backendStart },
          },
          releases,
        };
      });
      track(undefined, started);
      // Output tails were scrubbed by the process that recorded them; scrub again with what this one knows.
      return JSON.stringify(payload, (_key, value: unknown) =>
        typeof value === "string" ? reporter.redact(value) : value,
      );
    } catch (error) {
      track(error, started);
      return undefined;
    }
  }

  return {
    read(limit) {
      // Viewers that refresh at the same moment share one read.
      let reading = inFlight.get(limit);
      if (reading === undefined) {
        reading = readBody(limit).finally(() => inFlight.delete(limit));
        inFlight.set(limit, reading);
      }
      return reading;
    },
    async metrics() {
      const started = Date.now();
      try {
        const snapshot = await withPooledClient((client) =>
          readMetrics(client, config.schema, { name: config.lockName, key }),
        );
        track(undefined, started);
        return reporter.redact(formatMetrics(snapshot));
      } catch (error) {
        track(error, started);
        return undefined;
      }
    },
    async ping() {
      const started = Date.now();
      try {
        await withPooledClient((client) => client.query("SELECT 1"));
        track(undefined, started);
        return { ok: true, ms: Date.now() - started };
      } catch (error) {
        track(error, started);
        return { ok: false };
      }
    },
    end: () => pool.end().catch(() => {}),
  };
}
