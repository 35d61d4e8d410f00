#!/usr/bin/env node
// The command line: yargs reads argv and calls the library; one catch at the top maps errors to exit codes.

import { isSea } from "node:sea";
import type { Argv } from "yargs";
import type { Config, Environment } from "./core/config.js";
import { appName, ConfigError, loadConfig } from "./load/config.js";
import { ReleaseError, UsageError } from "./core/errors.js";
import { ExitCode, exitCodesHelp } from "./core/exit-codes.js";
import { ENV_FILE_OPTION, OPTIONS, takes, type CommandName, type OptionSpec } from "./core/options.js";
import { createReporter, type Reporter } from "./core/reporter.js";
import { joinNegativeValues, parseRunFast } from "./cli/run-args.js";
import { withSignals } from "./cli/signals.js";
import { supervise, SUPERVISE_ENV } from "./run/supervisor.js";
import { isDistinctive, passwordOf, WEAK_PASSWORD } from "./core/secrets.js";

/** The package's version, written in by the bundler (scripts/bundle.mjs): the binary has no package.json. */
declare const RELEASE_ORCHESTRATOR_VERSION: string;
const VERSION = RELEASE_ORCHESTRATOR_VERSION;

function describeOption(spec: OptionSpec): string {
  const parts = [spec.description];
  if (spec.choices) parts.push(`[${spec.choices.join("|")}]`);
  if (spec.env.length > 0) parts.push(`[env: ${spec.env.join(", ")}]`);
  const shown = spec.defaultText ?? spec.default;
  if (shown !== undefined) parts.push(`[default: ${shown}]`);
  return parts.join(" ");
}

/** The options of one command, from the one option list; choices are checked by the config parser. */
function options(command: CommandName, y: Argv): Argv {
  let out = y;
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (spec.flag === undefined || !takes(command, spec)) continue;
    out = out.option(spec.flag, { type: spec.type, describe: describeOption(spec) });
  }
  return out.option(ENV_FILE_OPTION.flag, {
    type: "string",
    describe: `${ENV_FILE_OPTION.description} [env: ${ENV_FILE_OPTION.env}] [default: ${ENV_FILE_OPTION.default}]`,
  });
}

/** Collects the flags the user actually gave, keyed by flag name. */
function givenFlags(argv: Record<string, unknown>): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (spec.flag !== undefined && argv[spec.flag] !== undefined) flags[spec.flag] = argv[spec.flag];
  }
  if (argv[ENV_FILE_OPTION.flag] !== undefined) flags[ENV_FILE_OPTION.flag] = argv[ENV_FILE_OPTION.flag];
  return flags;
}

function commandWords(argv: Record<string, unknown>): string[] {
  const afterDashes = argv["--"];
  const positional = argv.command;
  return [
    ...(Array.isArray(positional) ? positional.map(String) : []),
    ...(Array.isArray(afterDashes) ? afterDashes.map(String) : []),
  ];
}

interface Loaded {
  config: Config;
  env: Environment;
  flags: Record<string, unknown>;
}

/** Shared by every command: the same options, environment, .env, warnings and secrets. */
function load(argv: Record<string, unknown>, reporter: Reporter, command: CommandName): Loaded {
  const flags = givenFlags(argv);
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(
      flags,
      commandWords(argv),
      process.env,
      process.cwd(),
      command === "run" ? "run" : "inspect",
      command,
    );
  } catch (error) {
    // Bad options of run still name this app when its own name could be read.
    if (command === "run" && error instanceof ConfigError && error.app !== undefined)
      reporter.setApp(error.app);
    throw error;
  }
  const { config, warnings, dotenv } = loaded;
  reporter.configure({ verbose: config.verbose, json: config.json, quiet: config.quiet });
  if (command === "wait" && commandWords(argv).length > 0)
    throw new UsageError(
      "wait runs no command: it waits for the release's tasks; put the command in run instead.",
    );
  const password = passwordOf(config.databaseUrl);
  reporter.addSecret(password);
  reporter.addSecret(config.serveToken);
  reporter.addSecret(config.notifyUrl);
  if (command === "run" || command === "wait") {
    // Every line of run and wait names this app from here on (warnings included); every --json event
    // says who and what: the release joins when it is known.
    reporter.setApp(appName(config.app));
    reporter.setContext({ role: config.role, task: config.task, release: config.releaseId });
  }
  for (const warning of warnings) reporter.warn(warning);
  if (password !== undefined && !isDistinctive(password) && command === "run") {
    reporter.warn(`${WEAK_PASSWORD} Use a random password of 16 characters or more.`, {
      event: "weak-password",
    });
  }
  return { config, env: { ...dotenv, ...process.env }, flags };
}

async function runCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const { config, env } = load(argv, reporter, "run");
  return withSignals(async (signal) => {
    const { runReleasePhase } = await import("./run/tasks.js");
    // The command's supervisor is this very program: the binary itself, or node with this script.
    const supervisor = isSea()
      ? { file: process.execPath, args: [] }
      : { file: process.execPath, args: [process.argv[1] ?? ""] };
    const result = await runReleasePhase({ config, env, cwd: process.cwd(), reporter, signal, supervisor });
    reporter.debug(`peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
    return result.exitCode;
  });
}

/** `wait`: each --task (repeatable; default the tasks file's release tasks, or migrate) in turn, running nothing. */
async function waitCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const given = [argv.task ?? []].flat().map(String);
  // Each task name is checked as --task checks it; the first load also configures the reporter.
  const loads = (given.length === 0 ? [undefined] : given).map((task) =>
    load({ ...argv, task }, reporter, "wait"),
  );
  const { config, env } = loads[0] as Loaded;
  return withSignals(async (signal) => {
    const { waitForTasks } = await import("./run/wait-gate.js");
    const input = { config, env, cwd: process.cwd(), reporter, signal, supervisor: { file: "", args: [] } };
    const tasks = given.length === 0 ? undefined : loads.map((l) => l.config.task);
    return (await waitForTasks(input, tasks)).exitCode;
  });
}

async function statusCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const { config } = load(argv, reporter, "status");
  const { withClient } = await import("./operator/client.js");
  const { readStatus, formatStatus } = await import("./operator/status.js");
  const report = await withClient(config, "status", (client) => readStatus(client, config, config.limit));
  print(reporter, config.json ? JSON.stringify(report, null, 2) : formatStatus(report));
  return ExitCode.ok;
}

async function historyCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const { config, flags } = load(argv, reporter, "history");
  const { withClient } = await import("./operator/client.js");
  const { readHistory, readHistoryPhases, formatHistory } = await import("./operator/history.js");
  // --app filters; the app name from the environment (HEROKU_APP_NAME...) does not.
  const app = typeof flags.app === "string" ? config.app : undefined;
  const [attempts, phases] = await withClient(config, "history", async (client) => {
    const read = await readHistory(client, config, { release: config.release, app, limit: config.limit });
    return [read, config.json ? [] : await readHistoryPhases(client, config, read)] as const;
  });
  print(reporter, config.json ? JSON.stringify(attempts, null, 2) : formatHistory(attempts, phases));
  return ExitCode.ok;
}

async function doctorCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const { config, env } = load(argv, reporter, "doctor");
  const { runDoctor, formatFindings } = await import("./operator/doctor/doctor.js");
  const findings = await runDoctor(config, env, process.cwd());
  const failed = findings.some((f) => f.verdict === "fail");
  print(
    reporter,
    config.json
      ? JSON.stringify({ ok: !failed, findings }, null, 2)
      : `${formatFindings(findings)}\n\n${failed ? "Some checks failed: fix them before relying on this setup." : "All checks passed."}`,
  );
  return failed ? ExitCode.unsafeSetup : ExitCode.ok;
}

async function serveCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const { config } = load(argv, reporter, "serve");
  const { serveReleases } = await import("./operator/serve.js");
  await withSignals((signal) => serveReleases({ config, reporter, signal }));
  return ExitCode.ok;
}

/** Results of read-only commands go to stdout, scrubbed of secrets; a closed stdout drops them. */
function print(reporter: Reporter, text: string): void {
  if (process.stdout.destroyed || !process.stdout.writable) return;
  process.stdout.write(`${reporter.redact(text)}\n`);
}

/**
 * A reader of our output that goes away (`run ... | head -c 5`) must not end the orchestrator: the
 * command is still supervised and its outcome recorded. Writes to a closed stream fail with EPIPE
 * (Node ignores SIGPIPE); without a listener that error would be thrown from the event loop.
 */
function survivePipeErrors(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED") {
        stream.destroy();
        return;
      }
      throw error;
    });
  }
}

/** --json or RELEASE_JSON, read before the config is, so that usage errors are JSON events too. */
function wantsJson(args: readonly string[], env: Environment): boolean {
  const flag = args.findLast((arg) => arg === "--json" || arg === "--no-json" || arg.startsWith("--json="));
  if (flag === "--json") return true;
  if (flag === "--no-json") return false;
  if (flag !== undefined)
    return ["true", "1", "yes", "on"].includes(flag.slice("--json=".length).toLowerCase());
  return ["true", "1", "yes", "on"].includes((env.RELEASE_JSON ?? "").trim().toLowerCase());
}

interface CommandDefinition {
  name: CommandName;
  /** Positional arguments after the command's name. */
  positionals: string;
  describe: string;
  builder: (y: Argv) => Argv;
  handler: (argv: Record<string, unknown>, reporter: Reporter) => Promise<number>;
}

/** `$0` is the program's name, followed by the command's name when it was given first. */
const COMMAND_DEFINITIONS: CommandDefinition[] = [
  {
    name: "run",
    positionals: "[command..]",
    describe: "Run the release task (default: migrate) once per release, or wait for the process that does.",
    builder: (y) =>
      options("run", y)
        .positional("command", { type: "string", array: true, describe: "The command to run (after --)." })
        .example(
          "release-orchestrator run -- bundle exec rake db:migrate",
          "Rails, in a Procfile release: line",
        )
        .example(
          "RUN_MIGRATIONS=false release-orchestrator run -- python manage.py migrate",
          "an app that waits for the other one",
        )
        .example(
          "RELEASE_COMMAND='npm run migrate' release-orchestrator run",
          "the command from the environment, run through sh -c",
        )
        .epilog(exitCodesHelp()),
    handler: runCommand,
  },
  {
    name: "wait",
    positionals: "",
    describe:
      "Run nothing: wait until the release's task (--task, repeatable; default migrate) has succeeded for this release id, then exit 0; 76 when it failed, 75 after --wait-timeout. A gate for app processes that must not start on the old schema.",
    builder: (y) =>
      options("wait", y)
        .example(
          "release-orchestrator wait && exec bin/web",
          "a Kubernetes init container, a service's start",
        )
        .example("release-orchestrator wait --task migrate --task seed", "several tasks, in turn")
        .epilog(exitCodesHelp()),
    handler: waitCommand,
  },
  {
    name: "status",
    positionals: "",
    describe:
      "Who holds the release lock now, the running attempt and its heartbeat, the latest attempt of each release.",
    builder: (y) => options("status", y).example("release-orchestrator status --json", "the same as JSON"),
    handler: statusCommand,
  },
  {
    name: "history",
    positionals: "",
    describe: "Attempts and the outcomes of the processes that waited on them, newest first.",
    builder: (y) =>
      options("history", y)
        .example("release-orchestrator history --release 3f2c1a9", "one release")
        .example("release-orchestrator history --app s-admin --limit 50", "what one app did"),
    handler: historyCommand,
  },
  {
    name: "doctor",
    positionals: "",
    describe:
      "Check the setup (connection, pooler, TLS, privileges, version, lock, release id, roles); exit 78 when a check fails.",
    builder: (y) => options("doctor", y),
    handler: doctorCommand,
  },
  {
    name: "serve",
    positionals: "",
    describe:
      "Serve the release status page (GET /, /api/releases, /metrics, /healthz) on PORT; beyond loopback it needs RELEASE_SERVE_TOKEN.",
    builder: (y) => options("serve", y),
    handler: serveCommand,
  },
];

/** Parses argv, runs the chosen command and returns the exit code; never calls process.exit. */
export async function main(argv: string[]): Promise<number> {
  survivePipeErrors();
  const args = joinNegativeValues(argv);
  const reporter = createReporter({
    verbose: args.includes("--verbose"),
    json: wantsJson(args.slice(0, args.includes("--") ? args.indexOf("--") : undefined), process.env),
  });
  const fast = parseRunFast(args);
  if (fast !== undefined) {
    try {
      return await runCommand(fast, reporter);
    } catch (error) {
      return reportError(error, reporter);
    }
  }
  const { default: yargs } = await import("yargs");
  let exitCode: number = ExitCode.ok;
  const handle = (definition: CommandDefinition) => async (argv: Record<string, unknown>) => {
    exitCode = await definition.handler(argv, reporter);
  };
  // The usual form names the command first: parse it as that program's default command. yargs renders
  // and caches the whole help text whenever a named subcommand runs, a third of the start-up time.
  const first = COMMAND_DEFINITIONS.find((definition) => definition.name === args[0]);
  try {
    let parser = yargs(first ? args.slice(1) : args)
      .scriptName(first ? `release-orchestrator ${first.name}` : "release-orchestrator")
      .parserConfiguration({ "populate--": true, "camel-case-expansion": false, "strip-aliased": true });
    if (first) {
      parser = parser.command(`$0 ${first.positionals}`.trim(), first.describe, first.builder, handle(first));
    } else {
      parser = parser.usage(
        "$0 <command> [options]\n\nOne owner per release: exactly one process runs the release task, the others skip or wait for its outcome.",
      );
      for (const definition of COMMAND_DEFINITIONS) {
        parser = parser.command(
          `${definition.name} ${definition.positionals}`.trim(),
          definition.describe,
          definition.builder,
          handle(definition),
        );
      }
      parser = parser.demandCommand(1, "Name a command: release-orchestrator run -- <your migrate command>");
    }
    await parser
      .strict()
      .version(VERSION)
      .help()
      .alias("help", "h")
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageError(`${message} (see release-orchestrator ${first ? `${first.name} ` : ""}--help).`);
      })
      .parseAsync();
  } catch (error) {
    return reportError(error, reporter);
  }
  return exitCode;
}

function reportError(error: unknown, reporter: Reporter): number {
  if (error instanceof ReleaseError) {
    const problems = error instanceof UsageError ? error.problems : [error.message];
    for (const problem of problems) reporter.error(problem, { event: "error", exitCode: error.exitCode });
    if (error.stack) reporter.debug(error.stack);
    return error.exitCode;
  }
  reporter.error(
    `unexpected failure, this is a bug in release-orchestrator: ${error instanceof Error ? error.message : String(error)}. Please report it with the output of --verbose.`,
    { event: "error", exitCode: ExitCode.internal },
  );
  if (error instanceof Error && error.stack) reporter.debug(error.stack);
  return ExitCode.internal;
}

// No top-level await: the standalone binary runs this file as one CommonJS script. Started as a
// command's supervisor (run/supervisor.ts), the same program supervises instead.
if (process.env[SUPERVISE_ENV] === "1") {
  void supervise().then((code) => {
    process.exitCode = code;
  });
} else {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
