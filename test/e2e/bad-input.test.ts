// Bad input, table-driven: each case gets its documented exit code, one sentence naming the problem
// and the fix, no stack trace, nothing run, no ledger row, and never the database password.

import { chmodSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { runCli, scratchDir } from "../support/cli.js";

const db = useTestDatabase("bad-input");
const password = inject("pgPassword");

interface Case {
  name: string;
  args: string[];
  env?: (url: string) => Record<string, string>;
  code: number;
  message: RegExp;
  /** Files to create in the working directory first. */
  files?: Record<string, { text: string; mode?: number }>;
}

const MARKER = "SHOULD-NOT-RUN";
const touch = ["--", "sh", "-c", `echo ${MARKER}`];
const withDb = (url: string) => ({ DATABASE_URL: url, RELEASE_ID: "bad-1" });
const withUrl = (mutate: (u: URL) => void) => (url: string) => {
  const u = new URL(url);
  mutate(u);
  return { DATABASE_URL: u.toString(), RELEASE_ID: "bad-1" };
};

const cases: Case[] = [
  {
    name: "unknown role",
    args: ["run", "--role", "boss", ...touch],
    env: withDb,
    code: 64,
    message: /role "boss" is not one of auto, leader, follower \(from --role\)/,
  },
  {
    name: "unknown role in RELEASE_ROLE",
    args: ["run", ...touch],
    env: (u) => ({ ...withDb(u), RELEASE_ROLE: "primary" }),
    code: 64,
    message: /role "primary" is not one of auto, leader, follower \(from RELEASE_ROLE\)/,
  },
  {
    name: "RUN_MIGRATIONS=maybe",
    args: ["run", ...touch],
    env: (u) => ({ ...withDb(u), RUN_MIGRATIONS: "maybe" }),
    code: 64,
    message: /RUN_MIGRATIONS="maybe" is not true or false/,
  },
  {
    name: "RELEASE_ROLE contradicts RUN_MIGRATIONS",
    args: ["run", ...touch],
    env: (u) => ({ ...withDb(u), RELEASE_ROLE: "follower", RUN_MIGRATIONS: "true" }),
    code: 64,
    message: /RELEASE_ROLE says follower but RUN_MIGRATIONS=true says leader; unset one of them/,
  },
  {
    name: "malformed duration",
    args: ["run", "--wait-timeout", "5x", ...touch],
    env: withDb,
    code: 64,
    message: /wait timeout "5x" is not a duration; write it like 90s/,
  },
  {
    name: "negative duration",
    args: ["run", "--wait-timeout=-5s", ...touch],
    env: withDb,
    code: 64,
    message: /wait timeout "-5s" is negative/,
  },
  {
    name: "duration in words",
    args: ["run", ...touch],
    env: (u) => ({ ...withDb(u), RELEASE_WAIT_TIMEOUT: "ten minutes" }),
    code: 64,
    message: /"ten minutes" is not a duration;.*RELEASE_WAIT_TIMEOUT/,
  },
  {
    name: "bad connect timeout",
    args: ["run", "--connect-timeout", "abc", ...touch],
    env: withDb,
    code: 64,
    message: /connect timeout "abc" is not a duration/,
  },
  {
    name: "bad kill grace",
    args: ["run", "--kill-grace", "soon", ...touch],
    env: withDb,
    code: 64,
    message: /kill grace "soon" is not a duration/,
  },
  {
    name: "unknown follower mode",
    args: ["run", "--follower-mode", "later", ...touch],
    env: withDb,
    code: 64,
    message: /follower mode "later" is not one of wait, skip/,
  },
  {
    name: "RELEASE_VERBOSE=maybe",
    args: ["run", ...touch],
    env: (u) => ({ ...withDb(u), RELEASE_VERBOSE: "maybe" }),
    code: 64,
    message: /verbose "maybe" is not true or false/,
  },
  {
    name: "missing command",
    args: ["run"],
    env: withDb,
    code: 64,
    message: /No command to run as auto: put it after --/,
  },
  {
    name: "empty command",
    args: ["run", "--", ""],
    env: withDb,
    code: 64,
    message: /The command after -- is empty/,
  },
  {
    name: "empty RELEASE_COMMAND",
    args: ["run"],
    env: (u) => ({ ...withDb(u), RELEASE_COMMAND: "  " }),
    code: 64,
    message: /No command to run as auto/,
  },
  {
    name: "command not on PATH",
    args: ["run", "--", "no-such-migrate-tool", "up"],
    env: withDb,
    code: 64,
    message: /The command no-such-migrate-tool was not found on PATH; check its spelling or install it/,
  },
  {
    name: "command path that does not exist",
    args: ["run", "--", "./bin/missing.sh"],
    env: withDb,
    code: 64,
    message: /The command \.\/bin\/missing\.sh does not exist/,
  },
  {
    name: "command not executable",
    args: ["run", "--", "./migrate.sh"],
    env: withDb,
    files: { "migrate.sh": { text: `#!/bin/sh\necho ${MARKER}\n`, mode: 0o644 } },
    code: 64,
    message: /The command \.\/migrate\.sh is not an executable file; chmod \+x it/,
  },
  {
    name: "command is a directory",
    args: ["run", "--", "/tmp"],
    env: withDb,
    code: 64,
    message: /The command \/tmp is not an executable file/,
  },
  {
    name: "malformed URL",
    args: ["run", ...touch],
    env: () => ({ DATABASE_URL: `postgres://app:${password}@db:port/x`, RELEASE_ID: "bad-1" }),
    code: 64,
    message: /DATABASE_URL is not a valid URL; write it as postgres:\/\/user:password@host:5432\/dbname/,
  },
  {
    name: "not a postgres URL",
    args: ["run", ...touch],
    env: () => ({ DATABASE_URL: `mysql://app:${password}@db/x`, RELEASE_ID: "bad-1" }),
    code: 64,
    message: /DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//,
  },
  {
    name: "no database configured",
    args: ["run", ...touch],
    env: () => ({ RELEASE_ID: "bad-1" }),
    code: 64,
    message: /No database configured: set DATABASE_URL/,
  },
  {
    name: "unreachable port",
    args: ["run", "--connect-timeout", "1s", ...touch],
    env: withUrl((u) => (u.port = "1")),
    code: 69,
    message:
      /Nothing accepted connections at 127\.0\.0\.1:1 \(tried for .*\); check that PostgreSQL is running/,
  },
  {
    name: "unknown host",
    args: ["run", "--connect-timeout", "1s", ...touch],
    env: withUrl((u) => (u.hostname = "no-such-host.invalid")),
    code: 69,
    message: /The database host no-such-host\.invalid:\d+ could not be resolved/,
  },
  {
    name: "wrong password",
    args: ["run", ...touch],
    env: withUrl((u) => (u.password = `${password}-wrong`)),
    code: 69,
    message: /Password authentication failed for postgres@127\.0\.0\.1:\d+\/\S+; check the user and password/,
  },
  {
    name: "missing database",
    args: ["run", ...touch],
    env: withUrl((u) => (u.pathname = "/no_such_database")),
    code: 69,
    message: /The database in postgres@127\.0\.0\.1:\d+\/no_such_database does not exist/,
  },
  {
    name: "schema name with SQL in it",
    args: ["run", "--schema", 'x"; DROP TABLE users; --', ...touch],
    env: withDb,
    code: 64,
    message: /schema name must be a lower-case SQL identifier/,
  },
  {
    name: "schema name with a quote",
    args: ["run", ...touch],
    env: (u) => ({ ...withDb(u), RELEASE_SCHEMA: "it's" }),
    code: 64,
    message: /schema name must be a lower-case SQL identifier .*RELEASE_SCHEMA/,
  },
  {
    name: "lock name with SQL in it",
    args: ["run", "--lock-name", "x'); SELECT pg_sleep(10); --", ...touch],
    env: withDb,
    code: 64,
    message: /lock name must be 1 to 200 letters/,
  },
  {
    name: "release id with a space",
    args: ["run", "--release-id", "a b", ...touch],
    env: withDb,
    code: 64,
    message: /release id must be 1 to 200 printable ASCII characters without spaces/,
  },
  {
    name: "an empty --release-id (an empty RELEASE_ID counts as unset; the flag is an error)",
    args: ["run", "--release-id", "", ...touch],
    env: withDb,
    code: 64,
    message: /release id must be 1 to 200 printable ASCII characters without spaces \(from --release-id\)/,
  },
  {
    name: "release id with a non-ASCII letter (the rule is ASCII)",
    args: ["run", "--release-id", "é1", ...touch],
    env: withDb,
    code: 64,
    message: /release id must be 1 to 200 printable ASCII characters without spaces \(from --release-id\)/,
  },
  {
    name: "task name with a space",
    args: ["run", "--task", "my task", ...touch],
    env: withDb,
    code: 64,
    message: /task name must be 1 to 100 letters/,
  },
  {
    name: "SOURCE_VERSION of 10,000 characters",
    args: ["run", ...touch],
    env: (u) => ({ DATABASE_URL: u, SOURCE_VERSION: "a".repeat(10_000) }),
    code: 64,
    message:
      /SOURCE_VERSION is set but is not a release id \(it has 10000 characters;.*fix or unset SOURCE_VERSION/,
  },
  {
    name: "HEROKU_SLUG_COMMIT with a space",
    args: ["run", ...touch],
    env: (u) => ({ DATABASE_URL: u, HEROKU_SLUG_COMMIT: "3f2c1a9 dirty" }),
    code: 64,
    message: /HEROKU_SLUG_COMMIT is set but is not a release id \(it contains spaces/,
  },
  {
    name: "negative duration as a separate word",
    args: ["run", "--wait-timeout", "-5s", ...touch],
    env: withDb,
    code: 64,
    message: /wait timeout "-5s" is negative; write a duration of zero or more/,
  },
  {
    name: "task name with a quote",
    args: ["run", "--task", "mig'rate", ...touch],
    env: withDb,
    code: 64,
    message: /task name must be 1 to 100 letters/,
  },
  {
    name: "unknown flag",
    args: ["run", "--rol", "leader", ...touch],
    env: withDb,
    code: 64,
    message: /Unknown argument: rol/,
  },
  {
    name: "no subcommand",
    args: [],
    env: withDb,
    code: 64,
    message: /Name a command: release-orchestrator run -- <your migrate command>/,
  },
  {
    name: "unknown subcommand",
    args: ["migrate"],
    env: withDb,
    code: 64,
    message: /Unknown argument: migrate/,
  },
  {
    name: "waiting follower without a release id",
    args: ["run", "--role", "follower"],
    env: (u) => ({ DATABASE_URL: u }),
    code: 64,
    message: /A waiting follower needs a release id/,
  },
  {
    name: "missing --dotenv file",
    args: ["run", "--dotenv", "nope.env", ...touch],
    env: withDb,
    code: 64,
    message: /Cannot read the env file .*nope\.env/,
  },
  {
    name: "garbage in the release id file",
    args: ["run", ...touch],
    env: (u) => ({ DATABASE_URL: u }),
    files: { ".release-id": { text: "two words\n" } },
    code: 64,
    message: /The release id file .*\.release-id must hold one id/,
  },
  {
    name: "fingerprint path that does not exist",
    args: ["run", "--fingerprint", "db/migrate", ...touch],
    env: (u) => ({ DATABASE_URL: u }),
    code: 64,
    message: /The fingerprint path db\/migrate does not exist/,
  },
  {
    name: "several problems at once",
    args: ["run", "--role", "boss", "--wait-timeout", "x"],
    env: () => ({}),
    code: 64,
    message: /role "boss"[\s\S]*wait timeout "x"[\s\S]*No database configured/,
  },
];

describe("bad input", () => {
  beforeAll(() => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)("$name → exit $code", async (c) => {
    const cwd = scratchDir();
    for (const [name, file] of Object.entries(c.files ?? {})) {
      writeFileSync(join(cwd, name), file.text);
      if (file.mode !== undefined) chmodSync(join(cwd, name), file.mode);
    }
    const run = await runCli(c.args, { cwd, env: c.env?.(db().url) ?? {} });
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.exitCode, output).toBe(c.code);
    expect(run.stderr).toMatch(c.message);
    expect(output).not.toContain(MARKER);
    expect(output).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace without --verbose
    expect(output).not.toContain(password);
    for (const line of run.stderr.trim().split("\n"))
      expect(line).toMatch(/^\[release\]( \S+:)? error: .+[.)]$/);
    const rows = await db()
      .query("SELECT id FROM release_orchestrator.attempts")
      .catch(() => []);
    expect(rows).toEqual([]);
  });

  it("a user without the privilege to create the ledger schema gets 64, the fix, and nothing run", async () => {
    const role = `limited_${Date.now()}`;
    await db().query(`CREATE ROLE ${role} LOGIN PASSWORD 'limited-pw-123'`);
    const url = new URL(db().url);
    await db().query(`GRANT CONNECT ON DATABASE "${url.pathname.slice(1)}" TO ${role}`);
    url.username = role;
    url.password = "limited-pw-123";
    const run = await runCli(["run", "--schema", "limited_ledger", ...touch], {
      env: { DATABASE_URL: url.toString(), RELEASE_ID: "bad-2" },
    });
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toMatch(
      /The database user may not create the ledger schema limited_ledger; create it once as an owner \(CREATE SCHEMA limited_ledger AUTHORIZATION <app user>\) or grant CREATE on the database\./,
    );
    expect(run.stdout).not.toContain(MARKER);
    expect(`${run.stdout}${run.stderr}`).not.toContain("limited-pw-123");
  });

  it("--verbose adds the stack trace", async () => {
    const run = await runCli(["run", "--verbose", "--connect-timeout", "500ms", "--", "true"], {
      env: { DATABASE_URL: "postgres://u:pw-xyz@127.0.0.1:1/db", RELEASE_ID: "v" },
    });
    expect(run.exitCode).toBe(69);
    expect(run.stderr).toMatch(/debug: DatabaseUnavailableError: .*\n\s+at /);
    expect(run.stderr).not.toContain("pw-xyz");
  });
});

describe("every line of run names the app once it is known (docs/operator-guide.md)", () => {
  const unreachable = { DATABASE_URL: "postgres://u:abc@127.0.0.1:1/db", RELEASE_ID: "v" };
  const lines = (stderr: string) => stderr.trim().split("\n");

  it("the short-password warning and the error that follows carry --app", async () => {
    const run = await runCli(["run", "--app", "web-1", "--connect-timeout", "200ms", "--", "true"], {
      env: unreachable,
    });
    expect(run.exitCode).toBe(69);
    expect(run.stderr).toMatch(/^\[release\] web-1: warning: the database password is short/m);
    expect(run.stderr).toMatch(/^\[release\] web-1: error: Nothing accepted connections/m);
    for (const line of lines(run.stderr)) expect(line).toMatch(/^\[release\] web-1: /);
  });

  it("without --app, the host name is the app from the first line on", async () => {
    const run = await runCli(["run", "--role", "leader", "--connect-timeout", "200ms", "--", "true"], {
      env: { ...unreachable, RUN_MIGRATIONS: "false" },
    });
    expect(run.exitCode).toBe(69);
    expect(run.stderr).toMatch(
      /warning: --role says leader but RUN_MIGRATIONS=false says follower; the flag wins/,
    );
    expect(run.stderr).toMatch(/warning: the database password is short/);
    for (const line of lines(run.stderr))
      expect(line.startsWith(`[release] ${hostname()}: `), line).toBe(true);
  });

  it("bad options carry the app too (its own option could be read), also as --json events", async () => {
    const run = await runCli(["run", "--wait-timeout", "soon", "--", "true"], {
      env: { ...unreachable, HEROKU_APP_NAME: "shop-staging" },
    });
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toMatch(/^\[release\] shop-staging: error: wait timeout "soon"/m);
    const json = await runCli(["run", "--json", "--wait-timeout", "soon", "--", "true"], {
      env: { ...unreachable, HEROKU_APP_NAME: "shop-staging" },
    });
    expect(json.exitCode).toBe(64);
    const event = JSON.parse(lines(json.stderr)[0] ?? "") as Record<string, unknown>;
    expect(event).toMatchObject({ event: "error", app: "shop-staging", exitCode: 64 });
  });

  it("a command line that cannot be parsed comes before the app is known", async () => {
    const run = await runCli(["run", "--app", "web-1", "--no-such-flag", "--", "true"], { env: unreachable });
    expect(run.exitCode).toBe(64);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^\[release\] error: Unknown argument/)]);
    const dotenv = await runCli(["run", "--app", "web-1", "--dotenv", "/nonexistent/.env", "--", "true"], {
      env: unreachable,
    });
    expect(dotenv.exitCode).toBe(64);
    expect(lines(dotenv.stderr)).toEqual([
      expect.stringMatching(/^\[release\] error: Cannot read the env file/),
    ]);
  });

  it("the operator commands are no app's release: their lines carry none", async () => {
    const run = await runCli(["status", "--app", "web-1"], { env: { HEROKU_APP_NAME: "shop" } });
    expect(run.exitCode).toBe(64);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^\[release\] error: No database configured/)]);
  });
});

describe("release id edges, through the built CLI (docs/how-it-works.md)", () => {
  it("RELEASE_ID= counts as unset: the run is unversioned, runs the command, and the warning names it", async () => {
    const run = await runCli(
      ["run", "--schema", "edge_ledger", "--app", "web-1", "--", "sh", "-c", "echo RAN"],
      {
        env: { DATABASE_URL: db().url, RELEASE_ID: "" },
      },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain("RAN");
    expect(run.stderr).toMatch(
      /^\[release\] web-1: warning: No release id found .* this run is unversioned, .* RELEASE_ID is set but empty, which counts as unset\./m,
    );
    const rows = await db().query<{ release_id: string | null }>(
      "SELECT release_id FROM edge_ledger.attempts",
    );
    expect(rows).toEqual([{ release_id: null }]);
  });
});

describe("doctor --connect-timeout 2s against nothing", () => {
  it("tries for the whole timeout and says so (it said 'tried for 1 s')", async () => {
    const run = await runCli(["doctor", "--connect-timeout", "2s"], {
      env: { DATABASE_URL: "postgres://u:pw-long-enough-123@127.0.0.1:1/db", RELEASE_ID: "v" },
    });
    expect(run.exitCode, run.stdout + run.stderr).toBe(78);
    const tried = /Nothing accepted connections at 127\.0\.0\.1:1 \(tried for (\d+) s\)/.exec(run.stdout);
    expect(tried, run.stdout).not.toBeNull();
    // The last try is made when the 2 s are spent, never skipped before them.
    expect(Number(tried?.[1])).toBeGreaterThanOrEqual(2);
  });
});
