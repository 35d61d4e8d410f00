#!/usr/bin/env node
// The command line: yargs reads argv and calls the library; one catch at the top maps errors to exit codes.

import { readFileSync } from "node:fs";
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { loadConfig } from "./config.js";
import { ReleaseError, UsageError } from "./errors.js";
import { ExitCode } from "./exit-codes.js";
import { ENV_FILE_OPTION, OPTIONS, type OptionSpec } from "./options.js";
import { createReporter, type Reporter } from "./reporter.js";

const VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

const EXIT_CODES_HELP = `Exit codes:
  0        ran and succeeded; already done; waited and the leader succeeded; or skipped
  N        the leader's command exited N (passed through)
  64       usage or configuration error; nothing was run
  69       database unavailable (connect or authentication failed after retries)
  75       timed out waiting for the lock or for the leader
  76       this process waited on an attempt that failed
  77       the lock was lost during the run; the command was stopped
  78       unsafe setup refused (e.g. a transaction-mode pooler)
  130/143  interrupted by SIGINT/SIGTERM, which was forwarded to the command`;

function describeOption(spec: OptionSpec): string {
  const parts = [spec.description];
  if (spec.choices) parts.push(`[${spec.choices.join("|")}]`);
  parts.push(`[env: ${spec.env.join(", ")}]`);
  const shown = spec.defaultText ?? spec.default;
  if (shown !== undefined) parts.push(`[default: ${shown}]`);
  return parts.join(" ");
}

function runOptions(y: Argv): Argv {
  let out = y;
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (spec.flag === undefined) continue;
    // Choices are checked by the config parser, whose errors name the fix; help lists them.
    out = out.option(spec.flag, { type: spec.type, describe: describeOption(spec) });
  }
  return out
    .option(ENV_FILE_OPTION.flag, {
      type: "string",
      describe: `${ENV_FILE_OPTION.description} [env: ${ENV_FILE_OPTION.env}] [default: ${ENV_FILE_OPTION.default}]`,
    })
    .positional("command", { type: "string", array: true, describe: "The command to run (after --)." });
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
  const words = [
    ...(Array.isArray(positional) ? positional.map(String) : []),
    ...(Array.isArray(afterDashes) ? afterDashes.map(String) : []),
  ];
  return words;
}

async function runCommand(argv: Record<string, unknown>, reporter: Reporter): Promise<number> {
  const flags = givenFlags(argv);
  const verboseFlag = flags.verbose === true;
  if (verboseFlag) reporter.setVerbose(true);
  const { config, warnings, dotenv } = loadConfig(flags, commandWords(argv));
  reporter.setVerbose(config.verbose);
  for (const warning of warnings) reporter.warn(warning);

  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!controller.signal.aborted) controller.abort(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const { runRelease } = await import("./run.js");
    const result = await runRelease({
      config,
      env: { ...dotenv, ...process.env },
      cwd: process.cwd(),
      reporter,
      signal: controller.signal,
    });
    reporter.debug(`peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
    return result.exitCode;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Parses argv, runs the chosen command and returns the exit code; never calls process.exit. */
export async function main(args: string[]): Promise<number> {
  const reporter = createReporter({ verbose: args.includes("--verbose") });
  let exitCode: number = ExitCode.ok;
  try {
    await yargs(args)
      .scriptName("release-orchestrator")
      .usage(
        "$0 <command> [options]\n\nOne owner per release: exactly one process runs the release task, the others skip or wait for its outcome.",
      )
      .parserConfiguration({ "populate--": true, "camel-case-expansion": false, "strip-aliased": true })
      .command(
        "run [command..]",
        "Run the release task (default: migrate) once per release, or wait for the process that does.",
        (y) =>
          runOptions(y)
            .example("$0 run -- bundle exec rake db:migrate", "Rails, in a Procfile release: line")
            .example(
              "RUN_MIGRATIONS=false $0 run -- python manage.py migrate",
              "an app that waits for the other one",
            )
            .example(
              "RELEASE_COMMAND='npm run migrate' $0 run",
              "the command from the environment, run through sh -c",
            )
            .epilog(EXIT_CODES_HELP),
        async (argv) => {
          exitCode = await runCommand(argv, reporter);
        },
      )
      .demandCommand(1, "Name a command: release-orchestrator run -- <your migrate command>.")
      .strict()
      .version(VERSION)
      .help()
      .alias("help", "h")
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageError(`${message} (see release-orchestrator run --help).`);
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
    for (const problem of problems) reporter.error(problem);
    if (error.stack) reporter.debug(error.stack);
    return error.exitCode;
  }
  reporter.error(
    `unexpected failure, this is a bug in release-orchestrator: ${error instanceof Error ? error.message : String(error)}. Please report it with the output of --verbose.`,
  );
  if (error instanceof Error && error.stack) reporter.debug(error.stack);
  return ExitCode.internal;
}

const code = await main(hideBin(process.argv));
process.exitCode = code;
