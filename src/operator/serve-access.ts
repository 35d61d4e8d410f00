// Who may read the status page: beyond loopback only holders of RELEASE_SERVE_TOKEN, sent as a bearer
// token or as the password of HTTP basic auth (so a browser prompts for it). Pure, apart from hashing.

import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { Config } from "../core/config.js";
import { UsageError } from "../core/errors.js";

/** Shorter tokens are refused: the page shows commands and output tails. Heroku's generator makes 64 characters. */
export const MIN_TOKEN_LENGTH = 16;

/** What a 401 sends, so that a browser asks for a user name and password (the token). */
export const AUTH_CHALLENGE = 'Basic realm="release-orchestrator", charset="UTF-8"';

/** Whether an address to listen on is reachable from this machine only. A host name other than localhost is not. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  if (isIP(bare) === 6) return bare === "::1" || /^::ffff:127\./.test(bare);
  return false;
}

const WHY_HOST: Record<string, string> = {
  PORT: "PORT is set by the platform, so it listens on every address",
  RELEASE_SERVE_TOKEN: "RELEASE_SERVE_TOKEN is set, so it listens on every address",
};

/**
 * Checks that the page is not served beyond loopback without a token, and that a token is long enough.
 * Returns the token (undefined: no credentials needed); throws UsageError (exit 64) naming the fix.
 */
export function checkServeAccess(
  config: Pick<Config, "host" | "hostSource" | "serveToken">,
): string | undefined {
  const { host, hostSource, serveToken } = config;
  if (serveToken !== undefined) {
    if (serveToken.trim().length < MIN_TOKEN_LENGTH) {
      throw new UsageError(
        `RELEASE_SERVE_TOKEN needs at least ${MIN_TOKEN_LENGTH} characters; set a long random one, e.g. RELEASE_SERVE_TOKEN=$(openssl rand -hex 32).`,
      );
    }
    return serveToken;
  }
  if (isLoopback(host)) return undefined;
  const why = WHY_HOST[hostSource] ?? `${hostSource} asks for ${host}`;
  throw new UsageError(
    `serve would listen on ${host} (${why}) without credentials, and anyone who reaches it would read app names, commands and output tails: set RELEASE_SERVE_TOKEN to a long random secret (e.g. $(openssl rand -hex 32); app.json generates one on Heroku), or listen on loopback only with --host 127.0.0.1.`,
  );
}

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();

/**
 * A check of the Authorization header against the token: `Bearer <token>`, or `Basic` with the token as
 * the password (any user name). Digests of equal length are compared in constant time, so neither the
 * token's length nor its content leaks through timing.
 */
export function createAuthorizer(token: string | undefined): (authorization: string | undefined) => boolean {
  if (token === undefined) return () => true;
  const expected = digest(token);
  return (authorization) => {
    const presented = presentedSecret(authorization);
    // Compare even when nothing usable was sent, so a malformed header takes the same time.
    const matches = timingSafeEqual(digest(presented ?? ""), expected);
    return presented !== undefined && matches;
  };
}

/** The secret an Authorization header carries: a bearer token, or basic auth's password. */
export function presentedSecret(authorization: string | undefined): string | undefined {
  const match = /^\s*([A-Za-z]+)\s+(\S+)\s*$/.exec(authorization ?? "");
  if (match === null) return undefined;
  const [, scheme = "", credentials = ""] = match;
  switch (scheme.toLowerCase()) {
    case "bearer":
      return credentials;
    case "basic": {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(credentials)) return undefined;
      const decoded = Buffer.from(credentials, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      return colon < 0 ? undefined : decoded.slice(colon + 1);
    }
    default:
      return undefined;
  }
}
