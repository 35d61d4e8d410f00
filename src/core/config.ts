// Config: a pure parser (flags + environment + .env + defaults -> config and warnings, or every error
// at once). The thin loader that reads the process environment and the .env file is load/config.ts.

import {
  OPTIONS,
  RUN_MIGRATIONS_ENV,
  RUN_MIGRATIONS_SCHEMA,
  takes,
  type CommandName,
  type FollowerMode,
  type OrphanPolicy,
  type OptionSpec,
  type Role,
} from "./options.js";

export { passwordOf } from "./secrets.js";

export type Command = { kind: "argv"; file: string; args: string[] } | { kind: "shell"; script: string };

export interface Config {
  role: Role;
  /** Where the role came from, for messages: "--role", "RELEASE_ROLE", "RUN_MIGRATIONS=true", "default". */
  roleSource: string;
  followerMode: FollowerMode;
  waitTimeoutMs: number;
  releaseId: string | undefined;
  releaseIdFile: string;
  fingerprint: string[];
  app: string | undefined;
  task: string;
  databaseUrl: string | undefined;
  databaseUrlSource: string | undefined;
  lockName: string;
  schema: string;
  connectTimeoutMs: number;
  /** PGSSLMODE (environment or .env), applied to every connection whose URL has no sslmode. */
  sslMode: string | undefined;
  killGraceMs: number;
  orphanSessions: OrphanPolicy;
  /** The lock-queue guard: how long a queued-behind lock wait may last (null: off), how many tries, the first retry wait. */
  lockWaitMs: number | null;
  lockTries: number;
  lockRetryWaitMs: number;
  command: Command | undefined;
  /** The release tasks file (read when there is no command), and where its name came from ("default" for release-tasks.yml). */
  tasksFile: string;
  tasksFileSource: string;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  /** history/status: how many attempts; history: release filter; serve: where to listen. */
  limit: number;
  release: string | undefined;
  port: number;
  host: string;
  /** Where `host` came from, for messages: "--host", "RELEASE_SERVE_HOST", "PORT", "RELEASE_SERVE_TOKEN" or "default". */
  hostSource: string;
  /** serve: the credential of the status page (never printed). */
  serveToken: string | undefined;
  /** run: where outcomes are POSTed (never printed: it may hold a token). */
  notifyUrl: string | undefined;
}

export type Environment = Readonly<Record<string, string | undefined>>;

export interface ConfigInput {
  /** Parsed flags keyed by flag name ("wait-timeout"); absent when not given. */
  flags: Readonly<Record<string, unknown>>;
  /** Words after `--` (or positional words): the command to run. */
  argvCommand: readonly string[];
  env: Environment;
  /** Variables from the .env file; they apply below `env`. */
  dotenv: Environment;
  /** `run` needs a command (unless a follower); status, history, doctor and serve only read. Default run. */
  purpose?: "run" | "inspect";
  /**
   * The command being configured: options it does not take (PORT for `run`) are not read from the
   * environment, so a value meant for something else never blocks it. All options when absent.
   */
  command?: CommandName;
  /** Whether a tasks file exists at this path (relative to the working directory); the loader looks. */
  hasTasksFile?: (path: string) => boolean;
}

export type ConfigResult =
  | { ok: true; config: Config; warnings: string[] }
  | {
      ok: false;
      errors: string[];
      warnings: string[];
      /**
       * This app's name when its own option could be read although others could not: `{ name }`
       * (undefined when none was given: the host name applies); undefined when the name itself is bad.
       */
      app?: { name: string | undefined } | undefined;
    };

interface Found {
  value: unknown;
  /** "--role", "RELEASE_ROLE", "RELEASE_ROLE (from .env)" or "default". */
  source: string;
}

/** A value that is set and not blank. */
export function present(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== "";
}

/** Finds an option's raw value by precedence: flag > environment > .env > default. */
function findValue(spec: OptionSpec, input: ConfigInput): Found | undefined {
  if (spec.flag !== undefined && input.flags[spec.flag] !== undefined) {
    return { value: input.flags[spec.flag], source: `--${spec.flag}` };
  }
  for (const name of spec.env) {
    const value = input.env[name];
    if (present(value)) return { value, source: name };
  }
  for (const name of spec.env) {
    const value = input.dotenv[name];
    if (present(value)) return { value, source: `${name} (from .env)` };
  }
  if (spec.default !== undefined) return { value: spec.default, source: "default" };
  return undefined;
}

function lookupEnv(name: string, input: ConfigInput): Found | undefined {
  const value = input.env[name];
  if (present(value)) return { value, source: name };
  const fromFile = input.dotenv[name];
  if (present(fromFile)) return { value: fromFile, source: `${name} (from .env)` };
  return undefined;
}

/** A database URL as node-postgres reads it. */
export interface DatabaseUrl {
  url: URL;
  /** Where to connect: the `host` query parameter, else the URL's host, decoded; "" when empty; a socket directory starts with /. */
  host: string;
  /** The `port` query parameter, else the URL's port; "" for the default. */
  port: string;
  database: string;
  user: string;
}

/**
 * Parses a database URL as node-postgres (and libpq) accept it, including an empty host after the
 * userinfo (`postgres://u@/db?host=/run/pg`), which WHATWG URL refuses. Undefined when it is not a URL.
 */
export function parseDatabaseUrl(text: string): DatabaseUrl | undefined {
  let url: URL | undefined;
  let emptyHost = false;
  try {
    url = new URL(text);
  } catch {
    if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@\//i.test(text)) return undefined;
    try {
      url = new URL(text.replace("@/", "@localhost/"));
      emptyHost = true;
    } catch {
      return undefined;
    }
  }
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  const hostParam = url.searchParams.get("host");
  const host = hostParam ?? (emptyHost ? "" : decode(url.hostname).replace(/^\[(.+)\]$/, "$1"));
  return {
    url,
    host,
    port: url.searchParams.get("port") ?? url.port,
    database: decode(url.pathname.replace(/^\//, "")),
    user: url.searchParams.get("user") ?? decode(url.username),
  };
}

/** Checks a database URL without ever echoing it (it may hold a password). */
export function checkDatabaseUrl(url: string, source: string): string | undefined {
  const parsed = parseDatabaseUrl(url);
  if (parsed === undefined) {
    return `${source} is not a valid URL; write it as postgres://user:password@host:5432/dbname`;
  }
  if (parsed.url.protocol !== "postgres:" && parsed.url.protocol !== "postgresql:") {
    return `${source} must start with postgres:// or postgresql:// (it starts with ${parsed.url.protocol}//)`;
  }
  return undefined;
}

/** Parsed option values and where each came from; problems go to `errors`. */
interface Parsed {
  values: Record<string, unknown>;
  sources: Record<string, string>;
  errors: string[];
  warnings: string[];
  /** The keys whose value was given but did not pass its schema. */
  invalid: string[];
}

/** Every option of the list, by precedence, through its schema. */
function parseOptions(input: ConfigInput): Parsed {
  const parsed: Parsed = { values: {}, sources: {}, errors: [], warnings: [], invalid: [] };
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const used = input.command === undefined || takes(input.command, spec);
    const found = used
      ? findValue(spec, input)
      : spec.default === undefined
        ? undefined
        : { value: spec.default, source: "default" };
    if (found === undefined) continue;
    const result = spec.schema.safeParse(found.value);
    if (!result.success) {
      const where = found.source === "default" ? "the default" : found.source;
      for (const issue of result.error.issues) parsed.errors.push(`${issue.message} (from ${where}).`);
      parsed.invalid.push(spec.key);
      continue;
    }
    parsed.values[spec.key] = result.data;
    parsed.sources[spec.key] = found.source;
  }
  return parsed;
}

/** The role: --role and RELEASE_ROLE win; RUN_MIGRATIONS (the seed recipe's variable) maps to leader|follower. */
function resolveRole(input: ConfigInput, parsed: Parsed): { role: Role; roleSource: string } {
  let role = parsed.values.role as Role | undefined;
  let roleSource = parsed.sources.role ?? "default";
  const legacy = lookupEnv(RUN_MIGRATIONS_ENV, input);
  if (legacy === undefined) return { role: role ?? "auto", roleSource };
  const result = RUN_MIGRATIONS_SCHEMA.safeParse(legacy.value);
  if (!result.success) {
    parsed.errors.push(
      `${RUN_MIGRATIONS_ENV}="${String(legacy.value)}" is not true or false; set it to true on the app that runs migrations and false on the others.`,
    );
    return { role: role ?? "auto", roleSource };
  }
  const legacyRole: Role = result.data ? "leader" : "follower";
  if (roleSource === "default") {
    role = legacyRole;
    roleSource = `${RUN_MIGRATIONS_ENV}=${String(result.data)}`;
  } else if (role !== legacyRole) {
    const message = `${roleSource} says ${role} but ${legacy.source}=${String(legacy.value)} says ${legacyRole}`;
    if (roleSource.startsWith("--")) parsed.warnings.push(`${message}; the flag wins.`);
    else parsed.errors.push(`${message}; unset one of them.`);
  }
  return { role: role ?? "auto", roleSource };
}

/**
 * Fly.io's release Machine: flyctl sets FLY_PROCESS_GROUP to this and RELEASE_COMMAND to "1" (a flag,
 * not a command), overriding any RELEASE_COMMAND of fly.toml's [env].
 */
export const FLY_RELEASE_GROUP = "fly_app_release_command";

/** The command: the words after -- as an argv, else RELEASE_COMMAND through sh -c; null when refused (the error says why). */
function resolveCommand(input: ConfigInput, parsed: Parsed): Command | undefined | null {
  const [file, ...args] = input.argvCommand;
  if (input.argvCommand.length > 0) {
    if (file !== undefined && file.trim() !== "") return { kind: "argv", file, args };
    parsed.errors.push("The command after -- is empty; write the command to run after --.");
    return undefined;
  }
  const script = parsed.values.command;
  if (typeof script !== "string") return undefined;
  const flyFlag = parsed.sources.command === "RELEASE_COMMAND" && script.trim() === "1";
  if (flyFlag && input.env.FLY_PROCESS_GROUP === FLY_RELEASE_GROUP) {
    parsed.errors.push(
      'RELEASE_COMMAND is "1" because Fly.io sets it in its release Machine, not a command to run: put the command after -- in fly.toml (release_command = "release-orchestrator run -- npm run migrate").',
    );
    return null;
  }
  return { kind: "shell", script };
}

/** What the options require of each other: a command unless a follower, a database unless a skipping follower. */
function checkRequired(
  input: ConfigInput,
  parsed: Parsed,
  s: { role: Role; followerMode: FollowerMode; command: Command | undefined | null },
): void {
  const inspecting = input.purpose === "inspect";
  const tasksFile = parsed.values.tasksFile as string | undefined;
  // A tasks file named on purpose stands for the command: if it is missing, the loader says so.
  const named = parsed.sources.tasksFile !== undefined && parsed.sources.tasksFile !== "default";
  const hasTasks = tasksFile !== undefined && (named || input.hasTasksFile?.(tasksFile) === true);
  if (s.command === undefined && s.role !== "follower" && !inspecting && !hasTasks) {
    parsed.errors.push(
      `No command to run as ${s.role}: put it after -- (release-orchestrator run -- npm run migrate) or set RELEASE_COMMAND.`,
    );
  }
  const databaseUrl = parsed.values.databaseUrl as string | undefined;
  if (databaseUrl === undefined) {
    if (inspecting || !(s.role === "follower" && s.followerMode === "skip")) {
      parsed.errors.push(
        "No database configured: set DATABASE_URL (or RELEASE_DATABASE_URL, or --database-url).",
      );
    }
    return;
  }
  const problem = checkDatabaseUrl(databaseUrl, parsed.sources.databaseUrl ?? "the database URL");
  if (problem !== undefined) parsed.errors.push(`${problem}.`);
}

/** serve: every address when a token protects the page or a platform sets PORT (a web dyno), else loopback only. */
function resolveHost(parsed: Parsed): { host: string; hostSource: string } {
  const { values, sources } = parsed;
  const hostSource =
    sources.host ??
    (values.serveToken !== undefined ? "RELEASE_SERVE_TOKEN" : sources.port === "PORT" ? "PORT" : "default");
  const host = (values.host as string | undefined) ?? (hostSource === "default" ? "127.0.0.1" : "0.0.0.0");
  return { host, hostSource };
}

/** Turns flags, environment and .env into a config; pure, and reports every problem at once. */
export function parseConfig(input: ConfigInput): ConfigResult {
  const parsed = parseOptions(input);
  const { values, sources, errors, warnings } = parsed;
  const { role, roleSource } = resolveRole(input, parsed);
  const command = resolveCommand(input, parsed);
  const followerMode = (values.followerMode as FollowerMode | undefined) ?? "wait";
  checkRequired(input, parsed, { role, followerMode, command });
  if (errors.length > 0) {
    const app = parsed.invalid.includes("app") ? undefined : { name: values.app as string | undefined };
    return { ok: false, errors, warnings, app };
  }
  const config: Config = {
    role,
    roleSource,
    followerMode,
    waitTimeoutMs: values.waitTimeout as number,
    releaseId: values.releaseId as string | undefined,
    releaseIdFile: values.releaseIdFile as string,
    fingerprint: (values.fingerprint as string[] | undefined) ?? [],
    app: values.app as string | undefined,
    task: values.task as string,
    databaseUrl: values.databaseUrl as string | undefined,
    databaseUrlSource: sources.databaseUrl,
    lockName: values.lockName as string,
    schema: values.schema as string,
    connectTimeoutMs: values.connectTimeout as number,
    // libpq's variable, honoured by every connection (node-postgres alone would not see it in .env).
    sslMode: lookupEnv("PGSSLMODE", input)?.value as string | undefined,
    killGraceMs: values.killGrace as number,
    orphanSessions: values.orphanSessions as OrphanPolicy,
    lockWaitMs: values.lockWait as number | null,
    lockTries: Number(values.lockRetries),
    lockRetryWaitMs: values.lockRetryWait as number,
    command: command ?? undefined,
    tasksFile: values.tasksFile as string,
    tasksFileSource: sources.tasksFile ?? "default",
    limit: Number(values.limit),
    release: values.release as string | undefined,
    port: Number(values.port),
    ...resolveHost(parsed),
    serveToken: values.serveToken as string | undefined,
    notifyUrl: values.notifyUrl as string | undefined,
    json: values.json as boolean,
    quiet: values.quiet as boolean,
    verbose: values.verbose as boolean,
  };
  return { ok: true, config, warnings };
}
