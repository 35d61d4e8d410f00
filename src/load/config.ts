// Loads the config: reads the dotenv file and the process environment around the pure parser
// (core/config.ts); throws UsageError with every problem at once.

import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { parseConfig, present, type Config, type Environment } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import { ENV_FILE_OPTION, type CommandName } from "../core/options.js";

/** Reads the dotenv file named by --dotenv / RELEASE_ENV_FILE (default .env); a missing default file is fine. */
export function loadDotenv(
  flags: Readonly<Record<string, unknown>>,
  env: Environment,
  cwd: string,
): Environment {
  const flagValue = flags[ENV_FILE_OPTION.flag];
  const explicit = typeof flagValue === "string" ? flagValue : env[ENV_FILE_OPTION.env];
  const path = resolve(cwd, present(explicit) ? explicit : ENV_FILE_OPTION.default);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (!present(explicit) && (error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UsageError(`Cannot read the env file ${path}: ${(error as Error).message}.`);
  }
  return parseDotenv(text);
}

/** This app's name: --app (RELEASE_APP_NAME, HEROKU_APP_NAME, APP_NAME), else the host name. */
export function appName(app: string | undefined): string {
  return app ?? hostname();
}

/**
 * The options could not be read; `app` is this app's name all the same when its own option could be
 * (so that the errors carry it), undefined when that name was the bad value.
 */
export class ConfigError extends UsageError {
  constructor(
    problems: readonly string[],
    readonly app: string | undefined,
  ) {
    super(problems);
  }
}

/** Loads the config from flags, the process environment and .env; throws ConfigError with every problem. */
export function loadConfig(
  flags: Readonly<Record<string, unknown>>,
  argvCommand: readonly string[],
  env: Environment = process.env,
  cwd: string = process.cwd(),
  purpose: "run" | "inspect" = "run",
  command?: CommandName,
): { config: Config; warnings: string[]; dotenv: Environment } {
  const dotenv = loadDotenv(flags, env, cwd);
  const hasTasksFile = (path: string) => existsSync(resolve(cwd, path));
  const result = parseConfig({ flags, argvCommand, env, dotenv, purpose, command, hasTasksFile });
  if (!result.ok)
    throw new ConfigError(result.errors, result.app === undefined ? undefined : appName(result.app.name));
  return { config: result.config, warnings: result.warnings, dotenv };
}
