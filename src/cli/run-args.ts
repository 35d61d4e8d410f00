// The fast path of the command line: `run [options] -- <command>` parsed with node:util, not yargs.

import { parseArgs, type ParseArgsConfig } from "node:util";
import { ENV_FILE_OPTION, OPTIONS, takes, type OptionSpec } from "../core/options.js";

/**
 * The release phase's own invocation, `run [options] -- <command>`, parsed without yargs (loading and
 * setting it up is a fifth of the start-up time). Anything unusual (help, an unknown or repeated-word
 * option, a parse error) returns undefined and goes to yargs, which explains it.
 */
export function parseRunFast(args: readonly string[]): Record<string, unknown> | undefined {
  if (args[0] !== "run") return undefined;
  const end = args.indexOf("--");
  const own = end < 0 ? args.slice(1) : args.slice(1, end);
  if (own.some((arg) => arg === "--help" || arg === "-h" || arg === "--version" || arg.startsWith("--no-"))) {
    return undefined;
  }
  const options: NonNullable<ParseArgsConfig["options"]> = {
    [ENV_FILE_OPTION.flag]: { type: "string" },
  };
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (spec.flag === undefined || !takes("run", spec)) continue;
    // yargs lets an array option take several following words; leave those to yargs.
    if (
      spec.type === "array" &&
      own.some((arg) => arg === `--${spec.flag}` || arg.startsWith(`--${spec.flag}=`))
    ) {
      return undefined;
    }
    options[spec.flag] =
      spec.type === "boolean" ? { type: "boolean" } : { type: "string", multiple: spec.type === "array" };
  }
  try {
    const { values, positionals } = parseArgs({
      args: args.slice(1),
      options,
      strict: true,
      allowPositionals: true,
    });
    return { ...values, command: positionals };
  } catch {
    return undefined;
  }
}

/**
 * `--wait-timeout -5s`: both parsers read a value that starts with a dash as more options ("Unknown
 * arguments: 5, s"). A word like -5s or -1 after an option that takes a value is that option's value,
 * so that the config parser can say what is wrong with it. Words after `--` are the command's.
 */
export function joinNegativeValues(args: readonly string[]): string[] {
  const valued = new Set<string>([`--${ENV_FILE_OPTION.flag}`]);
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (spec.flag !== undefined && spec.type !== "boolean") valued.add(`--${spec.flag}`);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") return [...out, ...args.slice(i)];
    const next = args[i + 1];
    if (valued.has(arg) && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
