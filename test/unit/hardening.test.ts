// Issue 13, the unit half: malformed release-id sources, generic environments (APP_NAME, PORT), socket
// and empty-host URLs, the crowded-server advice, one builder of connection settings, --json events,
// and negative durations given as a separate word.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig, type ConfigInput, type ConfigResult } from "../../src/core/config.js";
import {
  connectionSettings,
  describeTarget,
  explainConnectError,
  pgClientConfig,
} from "../../src/db/connect.js";
import { findBuildReleaseId } from "../../demo/stamp-release-id.js";
import { shortReleaseId } from "../../src/core/release-id.js";
import { findReleaseId, gitHead } from "../../src/load/release-id.js";
import { createReporter } from "../../src/core/reporter.js";
import { joinNegativeValues } from "../../src/cli/run-args.js";
import { scratchDir } from "../support/cli.js";

const URL_ = "postgres://app:s3cret-pw@db.example.com:5432/app";
const input = (partial: Partial<ConfigInput>): ConfigInput => ({
  flags: {},
  argvCommand: ["npm", "run", "migrate"],
  env: { DATABASE_URL: URL_ },
  dotenv: {},
  ...partial,
});
function ok(result: ConfigResult) {
  if (!result.ok) throw new Error(`expected a config, got errors: ${result.errors.join(" | ")}`);
  return result.config;
}

describe("a release id source that is present but malformed", () => {
  const config = ok(parseConfig(input({})));
  it.each([
    [
      "SOURCE_VERSION",
      "a".repeat(10_000),
      /SOURCE_VERSION is set but is not a release id \(it has 10000 characters/,
    ],
    [
      "HEROKU_SLUG_COMMIT",
      "abc def",
      /HEROKU_SLUG_COMMIT is set but is not a release id \(it contains spaces/,
    ],
    ["GITHUB_SHA", "abc\u0007", /GITHUB_SHA is set but is not a release id/],
  ])("%s is an error naming it, not a silent fall-through to unversioned", (name, value, message) => {
    expect(() => findReleaseId(config, { [name]: value }, scratchDir())).toThrow(message);
    expect(() => findBuildReleaseId({ [name]: value }, () => undefined)).toThrow(message);
    try {
      findReleaseId(config, { [name]: value }, scratchDir());
    } catch (error) {
      expect((error as { exitCode: number }).exitCode).toBe(64);
    }
  });

  it("still skips a source that is blank, and takes the next one", () => {
    expect(findReleaseId(config, { SOURCE_VERSION: "  ", GITHUB_SHA: "g1" }, scratchDir())).toEqual({
      id: "g1",
      source: "GITHUB_SHA",
    });
  });

  it("reads git HEAD of any valid length, and shortens SHA-1 and SHA-256 commits", () => {
    const dir = scratchDir();
    const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, stdio: "ignore" });
    git("init", "-q", "--object-format=sha256");
    writeFileSync(join(dir, "f"), "x");
    git("add", "f");
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x");
    const head = gitHead(dir);
    expect(head).toMatch(/^[0-9a-f]{64}$/);
    expect(findReleaseId(config, {}, dir)).toEqual({ id: head, source: "git rev-parse HEAD" });
    expect(shortReleaseId(head ?? "")).toBe(head?.slice(0, 7));
    expect(shortReleaseId("a".repeat(40))).toBe("aaaaaaa");
    expect(gitHead(scratchDir())).toBeUndefined();
  });
});

describe("generic environments", () => {
  it("lets run go with a PORT that is no port: only serve reads it", () => {
    expect(ok(parseConfig(input({ env: { DATABASE_URL: URL_, PORT: "http" }, command: "run" }))).port).toBe(
      3000,
    );
    const serve = parseConfig(input({ env: { DATABASE_URL: URL_, PORT: "http" }, command: "serve" }));
    expect(serve.ok).toBe(false);
  });

  it("takes any app name as free text, control characters removed", () => {
    const app = (value: string) =>
      ok(parseConfig(input({ env: { DATABASE_URL: URL_, APP_NAME: value } }))).app;
    expect(app("Acme Store")).toBe("Acme Store");
    expect(app("boutique-été 日本")).toBe("boutique-été 日本");
    expect(app("evil\u001b[31m\nname\u202e")).toBe("evil [31m name");
    expect(app("x".repeat(300))).toHaveLength(100);
  });

  it("reads PGSSLMODE from .env, below the environment", () => {
    expect(ok(parseConfig(input({ dotenv: { PGSSLMODE: "require" } }))).sslMode).toBe("require");
    expect(
      ok(
        parseConfig(
          input({ env: { DATABASE_URL: URL_, PGSSLMODE: "disable" }, dotenv: { PGSSLMODE: "require" } }),
        ),
      ).sslMode,
    ).toBe("disable");
  });
});

describe("database URLs and their messages", () => {
  it("accepts an empty host with a host parameter, as libpq does", () => {
    const config = ok(parseConfig(input({ env: { DATABASE_URL: "postgres://u@/db?host=/run/x" } })));
    expect(config.databaseUrl).toBe("postgres://u@/db?host=/run/x");
    expect(describeTarget("postgres://u@/db?host=/run/x")).toBe("u@/run/x/.s.PGSQL.5432/db");
  });

  it("names the socket path, not port 5432 of a host, for a socket URL", () => {
    for (const url of [
      "postgres:///db?host=/var/run/postgresql&port=5433",
      "postgres://%2Fvar%2Frun%2Fpostgresql:5433/db",
    ]) {
      const target = describeTarget(url);
      expect(target).toBe("/var/run/postgresql/.s.PGSQL.5433/db");
      const message = explainConnectError({ code: "ENOENT", message: "connect ENOENT" }, target, "2 s");
      expect(message).toContain("socket at /var/run/postgresql/.s.PGSQL.5433");
      expect(message).not.toContain(":5432");
    }
    expect(describeTarget("postgres://u:pw@db.example.com/app")).toBe("u@db.example.com:5432/app");
  });

  it("advises the option that bounded the retries against a full server", () => {
    const full = { code: "53300", message: "sorry, too many clients already" };
    expect(explainConnectError(full, "u@h:5432/db", "8 s", "--wait-timeout")).toMatch(
      /too many clients for 8 s, as long as --wait-timeout allows;.*raise --wait-timeout/,
    );
    expect(explainConnectError(full, "u@h:5432/db", "8 s", "--wait-timeout")).not.toContain(
      "--connect-timeout",
    );
    const role = { code: "53300", message: 'too many connections for role "crowd"' };
    expect(explainConnectError(role, "crowd@h:5432/db", "2 s")).toMatch(
      /CONNECTION LIMIT.*raise --connect-timeout/,
    );
  });

  it("builds every connection's settings in one place: run waits for a full server, operator commands do not", () => {
    const config = ok(
      parseConfig(
        input({
          dotenv: { PGSSLMODE: "no-verify" },
          flags: { "wait-timeout": "8s", "connect-timeout": "2s" },
        }),
      ),
    );
    expect(connectionSettings(config, "run")).toEqual({
      url: URL_,
      timeoutMs: 2000,
      busyTimeoutMs: 8000,
      busyTimeoutOption: "--wait-timeout",
      sslMode: "no-verify",
    });
    expect(connectionSettings(config)).toMatchObject({
      busyTimeoutMs: 2000,
      busyTimeoutOption: "--connect-timeout",
    });
    expect(pgClientConfig(connectionSettings(config))).toEqual({
      connectionString: URL_,
      ssl: { rejectUnauthorized: false },
    });
  });
});

describe("--json events", () => {
  it("gives every line an event and the run's fields, warnings and errors included", () => {
    const lines: string[] = [];
    const reporter = createReporter({ json: true, write: (text) => lines.push(text) });
    reporter.setApp("Acme Store");
    reporter.setContext({ role: "auto", task: "migrate", release: "r1" });
    reporter.info("hello");
    reporter.warn("careful");
    reporter.error("broken", { event: "error", exitCode: 69 });
    reporter.progress("waiting", {});
    const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(["message", "warning", "error", "waiting"]);
    for (const event of events) {
      expect(event).toMatchObject({ app: "Acme Store", role: "auto", task: "migrate", release: "r1" });
    }
  });
});

describe("a negative duration given as a separate word", () => {
  it("is kept as the option's value, so that the parser can explain it", () => {
    expect(joinNegativeValues(["run", "--wait-timeout", "-5s", "--", "x", "--kill-grace", "-1"])).toEqual([
      "run",
      "--wait-timeout=-5s",
      "--",
      "x",
      "--kill-grace",
      "-1",
    ]);
    expect(joinNegativeValues(["run", "--json", "-5", "--verbose"])).toEqual([
      "run",
      "--json",
      "-5",
      "--verbose",
    ]);
  });
});
