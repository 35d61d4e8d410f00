// Every option of `run`, defined once: its flag, environment variables, default, help text and parser.
// `--help`, the option table of docs/reference.md and config parsing are all generated from this list.

// zod/mini: the same validation as zod, a quarter of its size in the bundle (start-up time matters here).
import * as z from "zod/mini";
import {
  IDENTIFIER,
  LOCK_NAME,
  NAME,
  booleanText,
  choice,
  cleanFreeText,
  duration,
  durationOrOff,
  pathList,
  pattern,
  safeProtocol,
} from "./option-values.js";
import { RELEASE_ID_PATTERN, RELEASE_ID_RULE } from "./release-id.js";

export const ROLES = ["auto", "leader", "follower"] as const;
export type Role = (typeof ROLES)[number];
export const FOLLOWER_MODES = ["wait", "skip"] as const;
export type FollowerMode = (typeof FOLLOWER_MODES)[number];
export const ORPHAN_POLICIES = ["wait", "terminate"] as const;
export type OrphanPolicy = (typeof ORPHAN_POLICIES)[number];

export interface OptionSpec {
  /** Key in the parsed config. */
  readonly key: string;
  /** Long flag without dashes; undefined for values that only come from the environment. */
  readonly flag?: string;
  /** Environment variables read, first found wins; the first is the canonical one. */
  readonly env: readonly string[];
  readonly type: "string" | "boolean" | "array";
  /** Default as text, parsed like any other input; undefined when the option has no default. */
  readonly default?: string;
  /** Shown in help and the docs' option table instead of `default` when the default is computed. */
  readonly defaultText?: string;
  readonly choices?: readonly string[];
  readonly description: string;
  readonly schema: z.ZodMiniType;
  /** The commands that take this option; all of them when absent. */
  readonly commands?: readonly CommandName[];
}

export const COMMANDS = ["run", "wait", "status", "history", "doctor", "serve"] as const;
export type CommandName = (typeof COMMANDS)[number];

/** The options of who runs the command, and how: `wait` runs none, it only waits. */
const NOT_WAIT: readonly CommandName[] = COMMANDS.filter((command) => command !== "wait");

/** Whether a command takes an option. */
export function takes(command: CommandName, spec: OptionSpec): boolean {
  return spec.commands === undefined || spec.commands.includes(command);
}

export const OPTIONS = [
  {
    key: "role",
    flag: "role",
    env: ["RELEASE_ROLE"],
    type: "string",
    default: "auto",
    defaultText: "auto (RUN_MIGRATIONS=true means leader, false means follower)",
    choices: ROLES,
    description:
      "leader runs the task unless it already succeeded for this release; follower never runs it; auto: the first to take the lock runs it, the others wait for its outcome.",
    schema: choice("role", ROLES),
    commands: NOT_WAIT,
  },
  {
    key: "followerMode",
    flag: "follower-mode",
    env: ["RELEASE_FOLLOWER_MODE"],
    type: "string",
    default: "wait",
    choices: FOLLOWER_MODES,
    description:
      "What a follower does: wait for the leader's outcome and exit with it, or skip (exit 0 at once; its code may boot before the schema is migrated).",
    schema: choice("follower mode", FOLLOWER_MODES),
    commands: NOT_WAIT,
  },
  {
    key: "waitTimeout",
    flag: "wait-timeout",
    env: ["RELEASE_WAIT_TIMEOUT"],
    type: "string",
    default: "55m",
    description:
      "How long to wait for the lock or for the leader before giving up with exit 75 (Heroku stops a release phase after 1 h).",
    schema: duration("wait timeout"),
  },
  {
    key: "releaseId",
    flag: "release-id",
    env: ["RELEASE_ID"],
    type: "string",
    defaultText:
      "the release id file, HEROKU_SLUG_COMMIT, HEROKU_BUILD_COMMIT, SOURCE_VERSION, CI commit variables, git rev-parse HEAD, --fingerprint",
    description: `What is being released: the same on every app that ships the same code; ${RELEASE_ID_RULE} (so \`é1\` is refused). Set but empty (\`RELEASE_ID=\`) counts as unset, and the unversioned warning says so.`,
    schema: pattern("release id", RELEASE_ID_PATTERN, RELEASE_ID_RULE),
  },
  {
    key: "releaseIdFile",
    flag: "release-id-file",
    env: ["RELEASE_ID_FILE"],
    type: "string",
    default: ".release-id",
    description:
      "A file stamped into the build that holds the release id (so one slug promoted to several apps carries one id); read if it exists.",
    schema: z.string().check(z.minLength(1, "release id file must not be empty")),
  },
  {
    key: "fingerprint",
    flag: "fingerprint",
    env: ["RELEASE_FINGERPRINT"],
    type: "array",
    description:
      "Paths (files or directories, e.g. db/migrate) whose content hash is the release id when nothing else gives one.",
    schema: pathList,
  },
  {
    key: "app",
    flag: "app",
    env: [
      "RELEASE_APP_NAME",
      "HEROKU_APP_NAME",
      "FLY_APP_NAME",
      "RENDER_SERVICE_NAME",
      "RAILWAY_SERVICE_NAME",
      "NOMAD_ALLOC_NAME",
      "APP_NAME",
    ],
    type: "string",
    defaultText: "the host name",
    description:
      "This app's name, shown to the others and recorded in the ledger: free text (control characters are removed, at most 100 characters).",
    schema: z.pipe(
      z.string(),
      z.transform((text: string) => cleanFreeText(text)),
    ),
  },
  {
    key: "task",
    flag: "task",
    env: ["RELEASE_TASK"],
    type: "string",
    default: "migrate",
    description: "The name of this step of the release; each task of a release has one owner.",
    schema: pattern("task name", NAME, "1 to 100 letters, digits or . _ : / @ + -"),
  },
  {
    key: "tasksFile",
    flag: "tasks-file",
    env: ["RELEASE_TASKS_FILE"],
    type: "string",
    default: "release-tasks.yml",
    description:
      "The release tasks file: with no command after -- (and no RELEASE_COMMAND), run runs its tasks in order, each under its scope's ownership; wait waits for its release tasks. Read if it exists; one named here must exist.",
    schema: z.string().check(z.minLength(1, "tasks file must not be empty")),
    commands: ["run", "wait"],
  },
  {
    key: "databaseUrl",
    flag: "database-url",
    env: ["RELEASE_DATABASE_URL", "DATABASE_URL"],
    type: "string",
    description:
      "PostgreSQL URL for the ledger (and the advisory lock, on a direct connection); direct or pooled (PgBouncer in any mode) both work. A direct RELEASE_DATABASE_URL makes waking instant while the command keeps a pooled DATABASE_URL.",
    schema: z.string(),
  },
  {
    key: "lockName",
    flag: "lock-name",
    env: ["RELEASE_LOCK_NAME"],
    type: "string",
    default: "release-orchestrator",
    description:
      "Name of the lock: one running attempt per lock name at a time (a constraint in the ledger), also hashed into the advisory lock key (two-int4 key space); the default is one lock per database.",
    schema: pattern("lock name", LOCK_NAME, "1 to 200 letters, digits or . _ : / @ + -"),
  },
  {
    key: "schema",
    flag: "schema",
    env: ["RELEASE_SCHEMA"],
    type: "string",
    default: "release_orchestrator",
    description: "Schema that holds the ledger; created on first use.",
    schema: pattern(
      "schema name",
      IDENTIFIER,
      "a lower-case SQL identifier (letters, digits, _; at most 63)",
    ),
  },
  {
    key: "connectTimeout",
    flag: "connect-timeout",
    env: ["RELEASE_CONNECT_TIMEOUT"],
    type: "string",
    default: "30s",
    description:
      "How long to keep retrying a database that cannot be reached (refused, unresolved host, network down) before exit 69. A server that answers but is full (too many clients) or starting up is retried for as long as run may wait (--wait-timeout); status, history, doctor and serve use this timeout for that too.",
    schema: duration("connect timeout"),
  },
  {
    key: "killGrace",
    flag: "kill-grace",
    env: ["RELEASE_KILL_GRACE"],
    type: "string",
    default: "20s",
    description:
      "After forwarding SIGTERM to the command (signal, lost lock), how long before SIGKILL; fits inside Heroku's 30 s shutdown.",
    schema: duration("kill grace"),
    commands: NOT_WAIT,
  },
  {
    key: "lockWait",
    flag: "lock-wait",
    env: ["RELEASE_LOCK_WAIT"],
    type: "string",
    default: "3s",
    description:
      "The lock-queue guard: when a statement of the command has waited this long for a table lock while the app's queries queue behind it, cancel it (the app goes on) and run the command again, up to --lock-retries tries; off turns the guard off.",
    schema: durationOrOff("lock wait"),
    commands: ["run"],
  },
  {
    key: "lockRetries",
    flag: "lock-retries",
    env: ["RELEASE_LOCK_RETRIES"],
    type: "string",
    default: "5",
    description:
      "How many tries the command gets when the lock-queue guard cancels it (1: no retry); the tries never go past --wait-timeout, and when they run out the leader exits 75.",
    schema: pattern("lock retries", /^([1-9]|[1-9]\d)$/, "a whole number from 1 to 99"),
    commands: ["run"],
  },
  {
    key: "lockRetryWait",
    flag: "lock-retry-wait",
    env: ["RELEASE_LOCK_RETRY_WAIT"],
    type: "string",
    default: "5s",
    description:
      "How long the leader waits, keeping its lease, before the second try after a cancel; doubled before each later try (5 s, 10 s, 20 s …), with ±20 % jitter.",
    schema: duration("lock retry wait"),
    commands: ["run"],
  },
  {
    key: "orphanSessions",
    flag: "orphan-sessions",
    env: ["RELEASE_ORPHAN_SESSIONS"],
    type: "string",
    default: "wait",
    choices: ORPHAN_POLICIES,
    description:
      "When taking over from a leader that died, and its command's sessions (PGAPPNAME 'release-orchestrator attempt N') are still connected: wait for them to end, or terminate them.",
    schema: choice("orphan sessions policy", ORPHAN_POLICIES),
    commands: NOT_WAIT,
  },
  {
    key: "command",
    env: ["RELEASE_COMMAND"],
    type: "string",
    description:
      "The command to run when no command follows `--`; run through `sh -c`. Followers do not need one.",
    schema: z.string(),
    commands: NOT_WAIT,
  },
  {
    key: "limit",
    flag: "limit",
    env: [],
    type: "string",
    default: "20",
    description: "How many attempts to show, newest first.",
    schema: pattern("limit", /^[1-9]\d{0,3}$/, "a whole number from 1 to 9999"),
    commands: ["history", "status", "serve"],
  },
  {
    key: "release",
    flag: "release",
    env: [],
    type: "string",
    description: "Show only this release id (a prefix is enough: the 7-character commit).",
    schema: pattern("release filter", RELEASE_ID_PATTERN, RELEASE_ID_RULE),
    commands: ["history"],
  },
  {
    key: "port",
    flag: "port",
    env: ["PORT"],
    type: "string",
    default: "3000",
    description: "Port of the release status page.",
    schema: pattern(
      "port",
      /^(?:[1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/,
      "a number from 1 to 65535",
    ),
    commands: ["serve"],
  },
  {
    key: "host",
    flag: "host",
    env: ["RELEASE_SERVE_HOST"],
    type: "string",
    defaultText:
      "127.0.0.1; 0.0.0.0 when RELEASE_SERVE_TOKEN is set or PORT comes from the environment (a platform)",
    description: "Address the release status page listens on; beyond loopback it needs RELEASE_SERVE_TOKEN.",
    schema: pattern("host", /^[A-Za-z0-9.:[\]-]{1,255}$/, "a host name or IP address"),
    commands: ["serve"],
  },
  {
    key: "serveToken",
    env: ["RELEASE_SERVE_TOKEN"],
    type: "string",
    description:
      "The status page's credential (environment only, so it never shows in a process list): every request but /healthz needs Authorization: Bearer <token>, or basic auth with the token as password. Required beyond loopback.",
    schema: z.string(),
    commands: ["serve"],
  },
  {
    key: "notifyUrl",
    env: ["RELEASE_NOTIFY_URL"],
    type: "string",
    description:
      "An http(s) URL (a Slack incoming webhook works as it is) that receives a JSON POST when an attempt ends and when a follower times out; never printed.",
    schema: z.string().check(
      z.refine((text: string) => /^https?:$/.test(safeProtocol(text)), {
        message:
          "the notification URL must be an http:// or https:// URL; its value is not shown, as it may hold a token",
      }),
    ),
    commands: ["run"],
  },
  {
    key: "json",
    flag: "json",
    env: ["RELEASE_JSON"],
    type: "boolean",
    default: "false",
    description:
      "Machine-readable output: every message of `run` becomes one JSON event per line on stderr (for log drains); status, history and doctor print JSON on stdout.",
    schema: booleanText("json"),
  },
  {
    key: "quiet",
    flag: "quiet",
    env: ["RELEASE_QUIET"],
    type: "boolean",
    default: "false",
    description: "Print only warnings and errors (the command's own output still streams through).",
    schema: booleanText("quiet"),
  },
  {
    key: "verbose",
    flag: "verbose",
    env: ["RELEASE_VERBOSE"],
    type: "boolean",
    default: "false",
    description: "Print debugging details, including stack traces of errors.",
    schema: booleanText("verbose"),
  },
] as const satisfies readonly OptionSpec[];

/** The legacy variable of the common `release-tasks.sh` recipe: true means leader, false follower. */
export const RUN_MIGRATIONS_ENV = "RUN_MIGRATIONS";
export const RUN_MIGRATIONS_SCHEMA = booleanText(RUN_MIGRATIONS_ENV);

/**
 * Where `.env` is read from; only a flag or the process environment can set it. The flag is not
 * `--env-file`: Node 20 takes `--env-file` anywhere on its command line as its own option.
 */
export const ENV_FILE_OPTION = {
  flag: "dotenv",
  env: "RELEASE_ENV_FILE",
  default: ".env",
  description:
    "A dotenv file whose variables apply below the real environment (flags > env > .env > defaults).",
} as const;
