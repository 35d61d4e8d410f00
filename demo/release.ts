// `npm run release`: the orchestrator around RELEASE_COMMAND (default `npm run migrate`), run the way a
// developer runs it. It reads `.env`; with no database configured it starts an embedded PostgreSQL whose
// data stays in `.release-orchestrator/` between runs, so a second run finds the release already done.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { config as loadDotenvFile } from "dotenv";
import pg from "pg";
import { passwordOf } from "../src/core/config.js";
import { quoteIdent } from "../src/db/connect.js";
import { ExitCode } from "../src/core/exit-codes.js";
import { formatDuration } from "../src/core/duration.js";
import { COMMIT_ENV_VARS } from "../src/core/release-id.js";
import { fingerprintPaths } from "../src/load/release-id.js";
import { createReporter, type Reporter } from "../src/core/reporter.js";
import { isMain } from "./is-main.js";
import { LocalPostgresError, startLocalPostgres, type LocalPostgres } from "./local-postgres.js";

export const DEFAULT_RELEASE_COMMAND = "npm run migrate";
export const DEFAULT_LOCAL_DIR = ".release-orchestrator";
const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

type Environment = Record<string, string | undefined>;

/** The options given to `run` (the words before --). */
function optionWords(args: readonly string[]): readonly string[] {
  const end = args.indexOf("--");
  return end < 0 ? args : args.slice(0, end);
}

/** True when the arguments for `run` carry this option. */
function hasFlag(args: readonly string[], flag: string): boolean {
  return optionWords(args).some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`));
}

/** The value of `--flag value` or `--flag=value` among the arguments for `run`. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const options = optionWords(args);
  for (let i = 0; i < options.length; i++) {
    const arg = options[i] ?? "";
    if (arg.startsWith(`--${flag}=`)) return arg.slice(flag.length + 3);
    if (arg === `--${flag}`) return options[i + 1];
  }
  return undefined;
}

/**
 * Locally, what is being released is the working tree, not the last commit: a migration added but not
 * committed must run. So when neither RELEASE_ID, a stamped file nor a platform commit variable names
 * the release, its id is the content hash of the migrations (RELEASE_FINGERPRINT, default migrations/).
 * Undefined leaves the choice to `run` (git HEAD, then unversioned).
 */
export function localReleaseId(
  env: Environment,
  args: readonly string[],
  cwd: string,
): { id: string; from: string } | undefined {
  if (hasFlag(args, "release-id") || hasFlag(args, "fingerprint")) return undefined;
  if (env.RELEASE_ID?.trim()) return undefined;
  const idFile = hasFlag(args, "release-id-file")
    ? undefined
    : resolve(cwd, env.RELEASE_ID_FILE?.trim() || ".release-id");
  if (idFile === undefined || existsSync(idFile)) return undefined;
  if (COMMIT_ENV_VARS.some((name) => env[name]?.trim())) return undefined;
  const paths = (env.RELEASE_FINGERPRINT ?? "migrations").split(/[,\s]+/).filter((path) => path !== "");
  if (paths.length === 0 || !paths.every((path) => existsSync(resolve(cwd, path)))) return undefined;
  return { id: fingerprintPaths(paths, cwd), from: `the content of ${paths.join(", ")}` };
}

interface Summary {
  ran?: { id: number; status: string; exitCode: number | null; durationMs: number | null };
  followed?: { outcome: string; attemptId: number | null; attemptApp: string | null };
}

/** What the orchestrator process `pid` did, from the ledger. */
async function readSummary(url: string, schema: string, pid: number): Promise<Summary> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    const s = quoteIdent(schema);
    const host = hostname();
    const ran = await client.query<{
      id: string;
      status: string;
      exit_code: number | null;
      duration_ms: number | null;
    }>(
      `SELECT id, status, exit_code, duration_ms FROM ${s}.attempts WHERE pid = $1 AND host = $2 ORDER BY id DESC LIMIT 1`,
      [pid, host],
    );
    const followed = await client.query<{ outcome: string; attempt_id: string | null; app: string | null }>(
      `SELECT f.outcome, f.attempt_id, a.app FROM ${s}.follower_outcomes f LEFT JOIN ${s}.attempts a ON a.id = f.attempt_id
        WHERE f.pid = $1 AND f.host = $2 ORDER BY f.id DESC LIMIT 1`,
      [pid, host],
    );
    const r = ran.rows[0];
    const f = followed.rows[0];
    return {
      ...(r === undefined
        ? {}
        : { ran: { id: Number(r.id), status: r.status, exitCode: r.exit_code, durationMs: r.duration_ms } }),
      ...(f === undefined
        ? {}
        : {
            followed: {
              outcome: f.outcome,
              attemptId: f.attempt_id === null ? null : Number(f.attempt_id),
              attemptApp: f.app,
            },
          }),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** One line for the end of the run: "ran" or "already done", the words the issue asks people to see. */
export function describeSummary(summary: Summary, task: string): string | undefined {
  if (summary.ran !== undefined) {
    const { id, status, exitCode, durationMs } = summary.ran;
    const took = durationMs === null ? "" : ` in ${formatDuration(durationMs)}`;
    return status === "succeeded"
      ? `ran ${task}: attempt #${id} succeeded${took}.`
      : `ran ${task}: attempt #${id} ended ${status}${exitCode === null ? "" : ` with exit code ${exitCode}`}${took}.`;
  }
  if (summary.followed !== undefined) {
    const { outcome, attemptId, attemptApp } = summary.followed;
    const by =
      attemptId === null ? "" : ` (attempt #${attemptId}${attemptApp === null ? "" : ` by ${attemptApp}`})`;
    if (outcome === "already-done")
      return `already done: ${task} succeeded earlier for this release${by}; nothing ran.`;
    if (outcome === "succeeded")
      return `waited: another process ran ${task} for this release${by}, and it succeeded.`;
    return `did not run ${task}: ${outcome}${by}.`;
  }
  return undefined;
}

function runOrchestrator(
  args: readonly string[],
  env: Environment,
): Promise<{ code: number; pid: number | undefined }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, "run", ...args], { env, stdio: "inherit" });
    // Ctrl-C in a terminal reaches the orchestrator too; a signal sent to us alone is passed on. Either
    // way we wait for it to record the interruption, and only then stop the database under it.
    const forward = (signal: NodeJS.Signals) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    process.on("SIGHUP", forward);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      process.off("SIGHUP", forward);
      const signalNumber =
        signal === null
          ? 0
          : (({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGKILL: 9 } as Record<string, number>)[signal] ?? 1);
      resolvePromise({ code: code ?? 128 + signalNumber, pid: child.pid });
    });
  });
}

/** Runs `release-orchestrator run` with the local defaults; returns the exit code to exit with. */
export async function release(args: readonly string[], reporter: Reporter): Promise<number> {
  const cwd = process.cwd();
  // The orchestrator reads .env itself; we read it first (quietly, below the real environment) to know
  // whether a database is configured, and the child inherits what it says.
  const envFile = resolve(cwd, flagValue(args, "dotenv") ?? (process.env.RELEASE_ENV_FILE?.trim() || ".env"));
  if (existsSync(envFile)) loadDotenvFile({ path: envFile, quiet: true });
  // node-pg-migrate loads .env too, with dotenv's banner; the orchestrator has already said what it read.
  const env: Environment = { DOTENV_CONFIG_QUIET: "true", ...process.env };

  if (!args.includes("--") && !env.RELEASE_COMMAND?.trim()) {
    env.RELEASE_COMMAND = DEFAULT_RELEASE_COMMAND;
  }
  const local = localReleaseId(env, args, cwd);
  if (local !== undefined) {
    env.RELEASE_ID = local.id;
    reporter.info(`release id ${local.id}: ${local.from} (set RELEASE_ID to choose one).`);
  }

  let server: LocalPostgres | undefined;
  const configured =
    hasFlag(args, "database-url") || Boolean(env.RELEASE_DATABASE_URL?.trim() || env.DATABASE_URL?.trim());
  if (!configured) {
    const dir = resolve(cwd, env.RELEASE_LOCAL_DIR?.trim() || DEFAULT_LOCAL_DIR);
    const rel = relative(cwd, dir);
    const shown = rel === "" ? "." : rel.startsWith("..") || isAbsolute(rel) ? dir : rel;
    // World-traversable, so that the server's OS user can reach the data when we run as root.
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    server = await startLocalPostgres({
      dataDir: resolve(dir, "pgdata"),
      passwordFile: resolve(dir, "password"),
      log: (line) => reporter.info(line),
    });
    reporter.addSecret(server.password);
    reporter.info(
      `no DATABASE_URL: ${server.created ? "created" : "started"} an embedded PostgreSQL ${server.version} at ${server.displayUrl}`,
    );
    reporter.info(
      `its data is in ${shown}/pgdata (kept between runs; delete ${shown} to start over); the password is in ${shown}/password.`,
    );
    reporter.info(
      `connect while it runs: PGPASSWORD="$(cat ${shown}/password)" psql ${server.displayUrl} ; it stops when this command ends.`,
    );
    env.DATABASE_URL = server.url;
    delete env.RELEASE_DATABASE_URL;
  }

  const ledgerUrl =
    flagValue(args, "database-url") ?? (env.RELEASE_DATABASE_URL?.trim() || env.DATABASE_URL?.trim());
  reporter.addSecret(passwordOf(ledgerUrl));
  try {
    const { code, pid } = await runOrchestrator(args, env);
    if (ledgerUrl !== undefined && pid !== undefined) {
      try {
        const summary = describeSummary(
          await readSummary(
            ledgerUrl,
            flagValue(args, "schema") ?? (env.RELEASE_SCHEMA?.trim() || "release_orchestrator"),
            pid,
          ),
          flagValue(args, "task") ?? (env.RELEASE_TASK?.trim() || "migrate"),
        );
        if (summary !== undefined) reporter.info(summary);
      } catch (error) {
        reporter.debug(`could not read the ledger for a summary: ${(error as Error).message}`);
      }
    }
    return code;
  } finally {
    if (server !== undefined) {
      await server.stop();
      reporter.info("stopped the embedded PostgreSQL.");
    }
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const reporter = createReporter({
    verbose: args.includes("--verbose") || /^(1|true|yes|on)$/i.test(process.env.RELEASE_VERBOSE ?? ""),
  });
  reporter.setApp("local");
  try {
    return await release(args, reporter);
  } catch (error) {
    if (error instanceof LocalPostgresError) {
      reporter.error(error.message);
      return ExitCode.databaseUnavailable;
    }
    reporter.error(`unexpected failure: ${(error as Error).message}`);
    if (error instanceof Error && error.stack) reporter.debug(error.stack);
    return ExitCode.internal;
  }
}

if (isMain(import.meta.url)) process.exitCode = await main();
