// Config parsing: precedence flags > environment > .env > defaults, RUN_MIGRATIONS, every error at once.

import { describe, expect, it } from "vitest";
import { parseConfig, type ConfigInput, type ConfigResult } from "../../src/core/config.js";
import { OPTIONS } from "../../src/core/options.js";

const URL_ = "postgres://app:s3cret-pw@db.example.com:5432/app";

function input(partial: Partial<ConfigInput>): ConfigInput {
  return {
    flags: {},
    argvCommand: ["npm", "run", "migrate"],
    env: { DATABASE_URL: URL_ },
    dotenv: {},
    ...partial,
  };
}

function ok(result: ConfigResult) {
  if (!result.ok) throw new Error(`expected a config, got errors: ${result.errors.join(" | ")}`);
  return result;
}

function errors(result: ConfigResult): string[] {
  if (result.ok) throw new Error("expected errors");
  return result.errors;
}

describe("parseConfig", () => {
  it("uses the defaults when nothing is set", () => {
    const { config } = ok(parseConfig(input({})));
    expect(config).toMatchObject({
      role: "auto",
      roleSource: "default",
      followerMode: "wait",
      waitTimeoutMs: 55 * 60_000,
      task: "migrate",
      lockName: "release-orchestrator",
      schema: "release_orchestrator",
      releaseIdFile: ".release-id",
      connectTimeoutMs: 30_000,
      killGraceMs: 20_000,
      verbose: false,
      command: { kind: "argv", file: "npm", args: ["run", "migrate"] },
    });
  });

  it("applies precedence flags > environment > .env > defaults, for every option with a flag and an env variable", () => {
    const samples: Record<string, [string, string, string]> = {
      role: ["leader", "follower", "auto"],
      "follower-mode": ["skip", "wait", "skip"],
      "wait-timeout": ["1s", "2s", "3s"],
      "release-id": ["flag-id", "env-id", "file-id"],
      "release-id-file": ["a.txt", "b.txt", "c.txt"],
      fingerprint: ["flag/dir", "env/dir", "file/dir"],
      app: ["flag-app", "env-app", "file-app"],
      task: ["flag-task", "env-task", "file-task"],
      "database-url": ["postgres://f@h/f", "postgres://e@h/e", "postgres://d@h/d"],
      "lock-name": ["flag-lock", "env-lock", "file-lock"],
      schema: ["flag_schema", "env_schema", "file_schema"],
      "connect-timeout": ["1s", "2s", "3s"],
      "kill-grace": ["1s", "2s", "3s"],
      "lock-wait": ["1s", "off", "3s"],
      "tasks-file": ["a.yml", "b.yml", "c.yml"],
      "lock-retries": ["2", "3", "4"],
      "lock-retry-wait": ["1s", "2s", "3s"],
      "orphan-sessions": ["terminate", "wait", "terminate"],
      verbose: ["true", "false", "true"],
      json: ["true", "false", "true"],
      port: ["3001", "3002", "3003"],
      host: ["flag.host", "env.host", "file.host"],
      quiet: ["true", "false", "true"],
    };
    for (const spec of OPTIONS) {
      if (!("flag" in spec) || spec.flag === undefined) continue;
      if (spec.env.length === 0) continue; // flag-only options (history filters)
      const sample = samples[spec.flag];
      expect(sample, `a sample for --${spec.flag}`).toBeDefined();
      if (sample === undefined) continue;
      const [flagValue, envValue, fileValue] = sample;
      const envName = spec.env[0];
      const base = { env: { DATABASE_URL: URL_ }, dotenv: {} as Record<string, string> };
      const withAll = input({
        flags: { [spec.flag]: flagValue },
        env: { ...base.env, [envName]: envValue },
        dotenv: { [envName]: fileValue },
      });
      const withEnv = input({ env: { ...base.env, [envName]: envValue }, dotenv: { [envName]: fileValue } });
      const withFile = input({ dotenv: { [envName]: fileValue } });
      const expected = (value: string) =>
        ok(parseConfig(input({ flags: { [spec.flag]: value } }))).config[spec.key as "role"];
      expect(ok(parseConfig(withAll)).config[spec.key as "role"], `--${spec.flag} beats ${envName}`).toEqual(
        expected(flagValue),
      );
      expect(ok(parseConfig(withEnv)).config[spec.key as "role"], `${envName} beats .env`).toEqual(
        expected(envValue),
      );
      if (spec.key !== "databaseUrl") {
        expect(ok(parseConfig(withFile)).config[spec.key as "role"], `.env beats the default`).toEqual(
          expected(fileValue),
        );
      }
    }
  });

  it("treats an empty environment variable as unset", () => {
    const { config } = ok(
      parseConfig(input({ env: { DATABASE_URL: URL_, RELEASE_ROLE: "", RELEASE_TASK: "  " } })),
    );
    expect(config.role).toBe("auto");
    expect(config.task).toBe("migrate");
  });

  it("maps RUN_MIGRATIONS=true to leader and false to follower", () => {
    expect(
      ok(parseConfig(input({ env: { DATABASE_URL: URL_, RUN_MIGRATIONS: "true" } }))).config,
    ).toMatchObject({ role: "leader", roleSource: "RUN_MIGRATIONS=true" });
    expect(ok(parseConfig(input({ env: { DATABASE_URL: URL_, RUN_MIGRATIONS: "false" } }))).config.role).toBe(
      "follower",
    );
    expect(ok(parseConfig(input({ dotenv: { RUN_MIGRATIONS: "1" } }))).config.role).toBe("leader");
  });

  it("refuses RUN_MIGRATIONS=maybe and a RELEASE_ROLE that contradicts RUN_MIGRATIONS", () => {
    expect(errors(parseConfig(input({ env: { DATABASE_URL: URL_, RUN_MIGRATIONS: "maybe" } })))).toEqual([
      'RUN_MIGRATIONS="maybe" is not true or false; set it to true on the app that runs migrations and false on the others.',
    ]);
    expect(
      errors(
        parseConfig(input({ env: { DATABASE_URL: URL_, RUN_MIGRATIONS: "true", RELEASE_ROLE: "follower" } })),
      )[0],
    ).toMatch(/RELEASE_ROLE says follower but RUN_MIGRATIONS=true says leader; unset one of them/);
  });

  it("lets --role win over RUN_MIGRATIONS, with a warning", () => {
    const result = ok(
      parseConfig(
        input({ flags: { role: "follower" }, env: { DATABASE_URL: URL_, RUN_MIGRATIONS: "true" } }),
      ),
    );
    expect(result.config.role).toBe("follower");
    expect(result.warnings[0]).toMatch(/the flag wins/);
  });

  it("reports every problem at once, each naming where the value came from", () => {
    const result = parseConfig({
      flags: { role: "boss", "wait-timeout": "-5s", schema: 'x"; DROP TABLE users; --' },
      argvCommand: [],
      env: { RELEASE_FOLLOWER_MODE: "later", RELEASE_KILL_GRACE: "soon" },
      dotenv: { RELEASE_LOCK_NAME: "it's mine" },
    });
    const list = errors(result);
    expect(list).toEqual([
      'role "boss" is not one of auto, leader, follower (from --role).',
      'follower mode "later" is not one of wait, skip (from RELEASE_FOLLOWER_MODE).',
      'wait timeout "-5s" is negative; write a duration of zero or more, like 90s, 45m, 1h30m or 500ms (from --wait-timeout).',
      "lock name must be 1 to 200 letters, digits or . _ : / @ + - (from RELEASE_LOCK_NAME (from .env)).",
      "schema name must be a lower-case SQL identifier (letters, digits, _; at most 63) (from --schema).",
      'kill grace "soon" is not a duration; write it like 90s, 45m, 1h30m or 500ms (from RELEASE_KILL_GRACE).',
      "No command to run as auto: put it after -- (release-orchestrator run -- npm run migrate) or set RELEASE_COMMAND.",
      "No database configured: set DATABASE_URL (or RELEASE_DATABASE_URL, or --database-url).",
    ]);
  });

  it("takes the command after -- before RELEASE_COMMAND, and runs RELEASE_COMMAND through sh -c", () => {
    expect(
      ok(parseConfig(input({ env: { DATABASE_URL: URL_, RELEASE_COMMAND: "rake db:migrate" } }))).config
        .command,
    ).toEqual({
      kind: "argv",
      file: "npm",
      args: ["run", "migrate"],
    });
    expect(
      ok(
        parseConfig(
          input({ argvCommand: [], env: { DATABASE_URL: URL_, RELEASE_COMMAND: "rake db:migrate" } }),
        ),
      ).config.command,
    ).toEqual({
      kind: "shell",
      script: "rake db:migrate",
    });
  });

  it("refuses Fly.io's RELEASE_COMMAND=1 in its release Machine as a command, and says where the command goes", () => {
    const fly = { DATABASE_URL: URL_, RELEASE_COMMAND: "1", FLY_PROCESS_GROUP: "fly_app_release_command" };
    expect(errors(parseConfig(input({ argvCommand: [], env: fly })))).toEqual([
      'RELEASE_COMMAND is "1" because Fly.io sets it in its release Machine, not a command to run: put the command after -- in fly.toml (release_command = "release-orchestrator run -- npm run migrate").',
    ]);
    // The words after -- win there, as everywhere; elsewhere "1" is a command like any other.
    expect(ok(parseConfig(input({ env: fly }))).config.command).toEqual({
      kind: "argv",
      file: "npm",
      args: ["run", "migrate"],
    });
    expect(
      ok(parseConfig(input({ argvCommand: [], env: { ...fly, FLY_PROCESS_GROUP: "app" } }))).config.command,
    ).toEqual({ kind: "shell", script: "1" });
    expect(
      ok(parseConfig(input({ argvCommand: [], env: { ...fly, RELEASE_COMMAND: "bin/migrate" } }))).config
        .command,
    ).toEqual({ kind: "shell", script: "bin/migrate" });
  });

  it("takes the app name from the platforms' own variables, RELEASE_APP_NAME first", () => {
    const app = (env: Record<string, string>) =>
      ok(parseConfig(input({ env: { DATABASE_URL: URL_, ...env } }))).config.app;
    expect(app({ FLY_APP_NAME: "shop-web" })).toBe("shop-web");
    expect(app({ RENDER_SERVICE_NAME: "shop-admin" })).toBe("shop-admin");
    expect(app({ RAILWAY_SERVICE_NAME: "shop-worker" })).toBe("shop-worker");
    expect(app({ NOMAD_ALLOC_NAME: "shop.web[2]" })).toBe("shop.web[2]");
    expect(app({ NOMAD_ALLOC_NAME: "shop.web[2]", APP_NAME: "generic" })).toBe("shop.web[2]");
    expect(app({ FLY_APP_NAME: "shop-web", RELEASE_APP_NAME: "chosen" })).toBe("chosen");
  });

  it("lets a follower go without a command, and a skipping follower without a database", () => {
    expect(
      ok(parseConfig(input({ argvCommand: [], flags: { role: "follower" } }))).config.command,
    ).toBeUndefined();
    expect(
      ok(
        parseConfig(
          input({ argvCommand: [], env: {}, flags: { role: "follower", "follower-mode": "skip" } }),
        ),
      ).config.databaseUrl,
    ).toBeUndefined();
    expect(
      errors(parseConfig(input({ argvCommand: [], env: {}, flags: { role: "follower" } }))),
    ).toHaveLength(1);
  });

  it("prefers RELEASE_DATABASE_URL for the lock over DATABASE_URL", () => {
    const { config } = ok(
      parseConfig(input({ env: { DATABASE_URL: URL_, RELEASE_DATABASE_URL: "postgres://direct@db/app" } })),
    );
    expect(config.databaseUrl).toBe("postgres://direct@db/app");
    expect(config.databaseUrlSource).toBe("RELEASE_DATABASE_URL");
  });

  it("explains a malformed database URL without echoing it (it may hold a password)", () => {
    for (const bad of [
      "postgres://app:s3cret-pw@db:notaport/app",
      "mysql://app:s3cret-pw@db/app",
      "app:s3cret-pw@db",
    ]) {
      const list = errors(parseConfig(input({ env: { DATABASE_URL: bad } })));
      expect(list).toHaveLength(1);
      expect(list[0]).toMatch(/^DATABASE_URL (is not a valid URL|must start with postgres)/);
      expect(list.join("\n")).not.toContain("s3cret-pw");
    }
  });

  it("takes the app name from RELEASE_APP_NAME, then HEROKU_APP_NAME, then APP_NAME", () => {
    const app = (env: Record<string, string>) =>
      ok(parseConfig(input({ env: { DATABASE_URL: URL_, ...env } }))).config.app;
    expect(app({ APP_NAME: "c", HEROKU_APP_NAME: "b", RELEASE_APP_NAME: "a" })).toBe("a");
    expect(app({ APP_NAME: "c", HEROKU_APP_NAME: "b" })).toBe("b");
    expect(app({ APP_NAME: "c" })).toBe("c");
    expect(app({})).toBeUndefined();
  });

  it("splits --fingerprint paths given as a list or comma/space separated", () => {
    expect(
      ok(parseConfig(input({ flags: { fingerprint: ["db/migrate", "schema.rb"] } }))).config.fingerprint,
    ).toEqual(["db/migrate", "schema.rb"]);
    expect(
      ok(
        parseConfig(
          input({ env: { DATABASE_URL: URL_, RELEASE_FINGERPRINT: "db/migrate, prisma/migrations" } }),
        ),
      ).config.fingerprint,
    ).toEqual(["db/migrate", "prisma/migrations"]);
  });
});
