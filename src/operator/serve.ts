// `serve`: the release status page (GET /), the same data as JSON (GET /api/releases), metrics for
// Prometheus (GET /metrics) and a health check (GET /healthz), on PORT. With RELEASE_SERVE_TOKEN every
// route but /healthz needs it (serve-access.ts); beyond loopback the token is required. The ledger is
// read through a small pool that reconnects by itself, so the page keeps working across a database
// restart; nothing it serves carries the password or the token.

import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import { METRICS_CONTENT_TYPE } from "../core/metrics.js";
import type { Reporter } from "../core/reporter.js";
import { AUTH_CHALLENGE, checkServeAccess, createAuthorizer } from "./serve-access.js";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "./serve-page.js";
import { createLedgerReader, type LedgerReader } from "./serve-reader.js";

export interface ServeOptions {
  config: Config;
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM: the server closes and the promise resolves. */
  signal: AbortSignal;
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

const TEXT = "text/plain; charset=utf-8";
const DOWN = "The database does not answer; retrying. The server log says why.";

interface Exchange {
  request: IncomingMessage;
  response: ServerResponse;
  url: URL;
  config: Config;
  ledger: LedgerReader;
}

/** What each route answers; only /healthz is open (it says up or down, nothing else). */
const ROUTES: Record<string, (x: Exchange) => Promise<void>> = {
  "/": (x) => {
    x.response.setHeader("content-security-policy", STATUS_PAGE_CSP);
    send(x.response, x.request, 200, "text/html; charset=utf-8", STATUS_PAGE_HTML);
    return Promise.resolve();
  },
  "/healthz": async (x) => {
    const health = await x.ledger.ping();
    send(x.response, x.request, health.ok ? 200 : 503, TEXT, health.ok ? "up\n" : "down\n");
  },
  "/metrics": async (x) => {
    const body = await x.ledger.metrics();
    if (body === undefined) send(x.response, x.request, 503, TEXT, `${DOWN}\n`);
    else send(x.response, x.request, 200, METRICS_CONTENT_TYPE, body);
  },
  "/api/releases": async ({ request, response, url, config, ledger }) => {
    const limit = parseLimit(url.searchParams.get("limit"), config.limit);
    if (typeof limit !== "number") {
      send(response, request, 400, "application/json", `${JSON.stringify({ error: limit.error })}\n`);
      return;
    }
    const body = await ledger.read(limit);
    if (body === undefined) {
      send(response, request, 503, "application/json", `${JSON.stringify({ error: DOWN })}\n`);
      return;
    }
    const etag = `W/"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    response.setHeader("etag", etag);
    if (request.headers["if-none-match"] === etag) send(response, request, 304, undefined, "");
    else send(response, request, 200, "application/json", body);
  },
};

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
    send(response, request, 400, TEXT, "bad request: the URL could not be parsed\n");
    return;
  }
  // Strangers learn nothing, not even the routes.
  if (url.pathname !== "/healthz" && !authorized(request.headers.authorization)) {
    response.setHeader("www-authenticate", AUTH_CHALLENGE);
    send(
      response,
      request,
      401,
      TEXT,
      "unauthorized: send Authorization: Bearer <RELEASE_SERVE_TOKEN>, or basic auth with the token as the password\n",
    );
    return;
  }
  const route = Object.hasOwn(ROUTES, url.pathname) ? ROUTES[url.pathname] : undefined;
  if (route === undefined) {
    send(
      response,
      request,
      404,
      TEXT,
      "not found: this server answers GET /, /api/releases, /metrics and /healthz\n",
    );
    return;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("allow", "GET, HEAD");
    send(response, request, 405, TEXT, "method not allowed: use GET\n");
    return;
  }
  await route({ request, response, url, config, ledger });
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
