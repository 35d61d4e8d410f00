// The fast `run` parser gives what yargs gives for the same argv, or steps aside (undefined) so yargs
// can explain what is wrong.

import yargs from "yargs";
import { describe, expect, it } from "vitest";
import { parseRunFast } from "../../src/cli/run-args.js";
import { ENV_FILE_OPTION, OPTIONS, takes, type OptionSpec } from "../../src/core/options.js";

/** What the CLI's yargs setup yields: given flags by name, and the command words. */
function viaYargs(args: string[]): { flags: Record<string, unknown>; words: string[] } {
  let argv: Record<string, unknown> = {};
  yargs(args.slice(1))
    .parserConfiguration({ "populate--": true, "camel-case-expansion": false, "strip-aliased": true })
    .command(
      "$0 [command..]",
      "the CLI's run",
      (b) => {
        let y = b;
        for (const spec of OPTIONS as readonly OptionSpec[]) {
          if (spec.flag !== undefined && takes("run", spec)) y = y.option(spec.flag, { type: spec.type });
        }
        return y
          .option(ENV_FILE_OPTION.flag, { type: "string" })
          .positional("command", { type: "string", array: true });
      },
      (parsed) => {
        argv = parsed;
      },
    )
    .strict()
    .parseSync();
  const flags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(argv)) {
    if (!["_", "$0", "--", "command"].includes(key) && value !== undefined) flags[key] = value;
  }
  const words = [
    ...((argv.command as unknown[] | undefined) ?? []).map(String),
    ...((argv["--"] as unknown[] | undefined) ?? []).map(String),
  ];
  return { flags, words };
}

function viaFast(args: string[]): { flags: Record<string, unknown>; words: string[] } | undefined {
  const parsed = parseRunFast(args);
  if (parsed === undefined) return undefined;
  const { command, ...flags } = parsed;
  return { flags, words: command as string[] };
}

describe("parseRunFast", () => {
  it.each([
    [["run", "--", "npm", "run", "migrate"]],
    [["run", "--role", "leader", "--release-id", "3f2c1a9", "--", "bundle", "exec", "rake", "db:migrate"]],
    [["run", "--wait-timeout=45m", "--verbose", "--json", "--", "sh", "-c", "echo --role x"]],
    [["run", "--app", "s-admin", "--follower-mode", "skip"]],
    [["run", "--quiet", "--dotenv", "ci.env", "--", "true"]],
    [["run", "--release-id", "123", "--", "node", "migrate.js", "--verbose"]],
    [["run", "npm", "run", "migrate"]],
  ])("agrees with yargs on %j", (args) => {
    expect(viaFast(args)).toEqual(viaYargs(args));
  });

  it.each([
    [["run", "--help"]],
    [["run", "-h"]],
    [["status"]],
    [["run", "--rol", "leader", "--", "true"]], // unknown flag: yargs says so
    [["run", "--fingerprint", "db/migrate", "schema.rb", "--", "true"]], // an array flag takes several words
    [["run", "--no-verbose", "--", "true"]],
    [["run", "--role"]], // a string flag without its value
  ])("leaves %j to yargs", (args) => {
    expect(parseRunFast(args)).toBeUndefined();
  });
});
