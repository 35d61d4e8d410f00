// Who may read the status page: where serve listens by default, when it refuses to start (exit 64),
// and which Authorization headers carry the token.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/core/config.js";
import { UsageError } from "../../src/core/errors.js";
import { ExitCode } from "../../src/core/exit-codes.js";
import {
  AUTH_CHALLENGE,
  checkServeAccess,
  createAuthorizer,
  isLoopback,
  MIN_TOKEN_LENGTH,
  presentedSecret,
} from "../../src/operator/serve-access.js";

const TOKEN = "0123456789abcdef0123456789abcdef";
const DATABASE_URL = "postgres://app:pw@db/app";
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;

function serveConfig(env: Record<string, string>, flags: Record<string, unknown> = {}, dotenv = {}) {
  const result = parseConfig({
    flags,
    argvCommand: [],
    env: { DATABASE_URL, ...env },
    dotenv,
    purpose: "inspect",
  });
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.config;
}

function refusal(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  throw new Error("expected a UsageError");
}

describe("where serve listens by default", () => {
  it("loopback when nothing asks for more", () => {
    expect(serveConfig({})).toMatchObject({
      host: "127.0.0.1",
      hostSource: "default",
      serveToken: undefined,
    });
    // --port, or PORT in a .env file, is a developer's choice, not a platform's.
    expect(serveConfig({}, { port: "4000" })).toMatchObject({ host: "127.0.0.1", port: 4000 });
    expect(serveConfig({}, {}, { PORT: "4000" })).toMatchObject({ host: "127.0.0.1", port: 4000 });
  });

  it("every address when a platform sets PORT (a Heroku web dyno) or a token protects the page", () => {
    expect(serveConfig({ PORT: "5000" })).toMatchObject({ host: "0.0.0.0", hostSource: "PORT", port: 5000 });
    expect(serveConfig({ RELEASE_SERVE_TOKEN: TOKEN })).toMatchObject({
      host: "0.0.0.0",
      hostSource: "RELEASE_SERVE_TOKEN",
      serveToken: TOKEN,
    });
  });

  it("--host and RELEASE_SERVE_HOST win", () => {
    expect(serveConfig({ PORT: "5000" }, { host: "127.0.0.1" })).toMatchObject({
      host: "127.0.0.1",
      hostSource: "--host",
    });
    expect(serveConfig({ RELEASE_SERVE_HOST: "::1", RELEASE_SERVE_TOKEN: TOKEN })).toMatchObject({
      host: "::1",
      hostSource: "RELEASE_SERVE_HOST",
    });
  });
});

describe("checkServeAccess", () => {
  it("serves loopback without credentials", () => {
    for (const host of ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]) {
      expect(isLoopback(host), host).toBe(true);
      expect(checkServeAccess({ host, hostSource: "--host", serveToken: undefined })).toBeUndefined();
    }
  });

  it("refuses every other address without a token, with exit 64 and a sentence naming the fix", () => {
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "status.example.com", "128.0.0.1"]) {
      expect(isLoopback(host), host).toBe(false);
      const error = refusal(() => checkServeAccess({ host, hostSource: "--host", serveToken: undefined }));
      expect(error.exitCode).toBe(ExitCode.usage);
      expect(error.message).toContain(`serve would listen on ${host} (--host asks for ${host})`);
      expect(error.message).toContain("set RELEASE_SERVE_TOKEN");
      expect(error.message).toContain("--host 127.0.0.1");
    }
    const platform = refusal(() => checkServeAccess(serveConfig({ PORT: "5000" })));
    expect(platform.message).toContain("(PORT is set by the platform, so it listens on every address)");
  });

  it("takes a token of at least 16 characters on any address, and refuses a shorter one", () => {
    expect(checkServeAccess({ host: "0.0.0.0", hostSource: "PORT", serveToken: TOKEN })).toBe(TOKEN);
    expect(checkServeAccess({ host: "127.0.0.1", hostSource: "default", serveToken: TOKEN })).toBe(TOKEN);
    const short = "x".repeat(MIN_TOKEN_LENGTH - 1);
    const error = refusal(() =>
      checkServeAccess({ host: "127.0.0.1", hostSource: "default", serveToken: short }),
    );
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toMatch(
      /^RELEASE_SERVE_TOKEN needs at least 16 characters; .*openssl rand -hex 32/,
    );
  });
});

describe("createAuthorizer", () => {
  const allows = createAuthorizer(TOKEN);

  it("accepts the token as a bearer token or as the basic auth password, whatever the user name", () => {
    expect(allows(`Bearer ${TOKEN}`)).toBe(true);
    expect(allows(`bearer ${TOKEN}`)).toBe(true);
    expect(allows(basic("ops", TOKEN))).toBe(true);
    expect(allows(basic("", TOKEN))).toBe(true);
    expect(allows(basic("anyone:at:all", TOKEN))).toBe(false); // the password is after the first colon
  });

  it("refuses anything else", () => {
    const refused = [
      undefined,
      "",
      "Bearer",
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Token ${TOKEN}`,
      TOKEN,
      basic(TOKEN, "wrong"),
      basic("ops", `${TOKEN} `),
      `Basic ${Buffer.from(TOKEN).toString("base64")}`, // no colon: no password
      "Basic !!!notbase64",
      `Bearer ${TOKEN} extra`,
    ];
    for (const header of refused) expect(allows(header), String(header)).toBe(false);
  });

  it("lets everything through when no token is configured (loopback only)", () => {
    expect(createAuthorizer(undefined)(undefined)).toBe(true);
  });

  it("reads the secret a header carries", () => {
    expect(presentedSecret(`Bearer abc`)).toBe("abc");
    expect(presentedSecret(basic("u", "p:q"))).toBe("p:q");
    expect(presentedSecret("Digest x")).toBeUndefined();
  });

  it("asks a browser for basic credentials", () => {
    expect(AUTH_CHALLENGE).toMatch(/^Basic realm="release-orchestrator"/);
  });
});
