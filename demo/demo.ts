// `npm run demo`: a Heroku pipeline promotion, simulated on this machine. One slug (this checkout,
// its release id stamped as heroku-postbuild does) is promoted to s-app and s-admin (and --apps N
// more) at once: each app's release phase, with the environment Heroku gives it, runs this repo's
// Procfile `release:` line at the same moment against one fresh embedded PostgreSQL. The timeline
// shows who led, who waited and how long; the exit code is 0 only if exactly one app ran the
// migrations and every app succeeded.

import { spawn, spawnSync } from "node:child_process";
import { randomBytes, randomInt, randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { shortReleaseId } from "../src/core/release-id.js";
import { gitHead } from "../src/load/release-id.js";
import { isMain } from "./is-main.js";
import { LocalPostgresError, startLocalPostgres, type LocalPostgres } from "./local-postgres.js";
import { parseProcfile } from "./procfile.js";
import {
  formatTimeline,
  judgePromotion,
  type AppRun,
  type AttemptRecord,
  type FollowerRecord,
  type PromotionFacts,
} from "./timeline.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const STAMP = fileURLToPath(new URL("./stamp-release-id.js", import.meta.url));
const TASK = "migrate";
const MAX_EXTRA_APPS = 30;

export interface DemoOptions {
  /** Apps beyond s-app and s-admin. */
  extraApps: number;
}

export const USAGE = `usage: npm run demo [-- --apps N]

Simulates a Heroku pipeline promotion: s-app and s-admin (and N more apps, at most ${MAX_EXTRA_APPS}) run
this repository's release phase (Procfile "release:") at the same moment against one fresh embedded
PostgreSQL. Exits 0 only when exactly one app ran the migrations and every app succeeded.`;

/** Parses the demo's arguments; returns an error sentence for bad ones. */
export function parseDemoArgs(args: readonly string[]): DemoOptions | { help: true } | { error: string } {
  let extraApps = 0;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--help" || arg === "-h") return { help: true };
    const inline = /^--apps=(.*)$/.exec(arg);
    if (arg === "--apps" || inline) {
      const text = inline ? inline[1] : args[++i];
      const n = Number(text);
      if (text === undefined || !/^\d+$/.test(text) || n > MAX_EXTRA_APPS) {
        return {
          error: `--apps takes a number of extra apps from 0 to ${MAX_EXTRA_APPS} (got ${text ?? "nothing"}).`,
        };
      }
      extraApps = n;
      continue;
    }
    return { error: `unknown argument ${arg}; ${USAGE.split("\n")[0]}` };
  }
  return { extraApps };
}

export function appNames(extraApps: number): string[] {
  return ["s-app", "s-admin", ...Array.from({ length: extraApps }, (_, i) => `s-worker-${i + 1}`)];
}

interface Started {
  app: string;
  version: string;
  dyno: string;
  done: Promise<AppRun>;
}

/** Starts one app's release phase: the Procfile's release command through `sh -c`, as Heroku runs it. */
function startReleasePhase(
  app: string,
  command: string,
  env: Record<string, string | undefined>,
  t0: number,
  width: number,
  print: (line: string) => void,
): Started {
  const version = `v${randomInt(10, 400)}`;
  const dyno = `release.${randomInt(1000, 10_000)}`;
  const startedMs = Date.now() - t0;
  const child = spawn("sh", ["-c", command], {
    cwd: ROOT,
    env: {
      ...env,
      DYNO: dyno,
      HEROKU_APP_NAME: app,
      HEROKU_APP_ID: randomUUID(),
      HEROKU_RELEASE_VERSION: version,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const label = `${app}[${dyno}]`.padEnd(width + 14);
  for (const stream of [child.stdout, child.stderr]) {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines)
        print(`${`+${((Date.now() - t0) / 1000).toFixed(1)}s`.padStart(7)} ${label} ${line}`);
    });
    stream.on("end", () => {
      if (partial !== "")
        print(`${`+${((Date.now() - t0) / 1000).toFixed(1)}s`.padStart(7)} ${label} ${partial}`);
    });
  }
  const done = new Promise<AppRun>((resolve) => {
    child.once("error", () =>
      resolve({ app, version, dyno, exitCode: 127, startedMs, exitedMs: Date.now() - t0 }),
    );
    child.once("close", (code, signal) =>
      resolve({
        app,
        version,
        dyno,
        exitCode: code ?? (signal === "SIGINT" ? 130 : 143),
        startedMs,
        exitedMs: Date.now() - t0,
      }),
    );
  });
  return { app, version, dyno, done };
}

/** What the ledger and the data say after the promotion. */
async function readFacts(url: string, releaseId: string, runs: AppRun[]): Promise<PromotionFacts> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    const attempts = await client.query<{
      id: string;
      app: string;
      status: string;
      exit_code: number | null;
      duration_ms: number | null;
    }>(
      "SELECT id, app, status, exit_code, duration_ms FROM release_orchestrator.attempts WHERE task = $1 AND release_id = $2 ORDER BY id",
      [TASK, releaseId],
    );
    const followers = await client.query<{
      app: string;
      outcome: string;
      exit_code: number;
      waited_ms: number;
      attempt_id: string | null;
    }>(
      "SELECT app, outcome, exit_code, waited_ms, attempt_id FROM release_orchestrator.follower_outcomes WHERE task = $1 AND release_id = $2 ORDER BY id",
      [TASK, releaseId],
    );
    const dataProblems: string[] = [];
    const migrations = await client
      .query<{ name: string }>("SELECT name FROM pgmigrations ORDER BY id")
      .catch(() => ({ rows: [] }));
    const files = readdirMigrations();
    if (migrations.rows.length !== files.length) {
      dataProblems.push(
        `${migrations.rows.length} of the ${files.length} migrations are recorded as applied.`,
      );
    }
    const backfill = await client
      .query<{ orders: number; events: number }>(
        "SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM order_events WHERE kind = 'status-backfilled') AS events",
      )
      .catch(() => undefined);
    const counts = backfill?.rows[0];
    if (counts !== undefined && counts.events !== counts.orders) {
      dataProblems.push(
        `the backfill recorded ${counts.events} events for ${counts.orders} orders: it ran ${counts.events / Math.max(1, counts.orders)} times.`,
      );
    }
    return {
      task: TASK,
      runs,
      attempts: attempts.rows.map((r) => ({
        id: Number(r.id),
        app: r.app,
        status: r.status,
        exitCode: r.exit_code,
        durationMs: r.duration_ms,
      })) satisfies AttemptRecord[],
      followers: followers.rows.map((r) => ({
        app: r.app,
        outcome: r.outcome,
        exitCode: r.exit_code,
        waitedMs: r.waited_ms,
        attemptId: r.attempt_id === null ? null : Number(r.attempt_id),
      })) satisfies FollowerRecord[],
      dataProblems,
    };
  } finally {
    await client.end().catch(() => {});
  }
}

function readdirMigrations(): string[] {
  return readdirSync(join(ROOT, "migrations")).filter((name) => /^\d+_.+\.(js|sql|ts)$/.test(name));
}

/** Runs the demo; returns the exit code. */
export async function demo(options: DemoOptions, print: (line: string) => void): Promise<number> {
  const apps = appNames(options.extraApps);
  const procfile = parseProcfile(readFileSync(join(ROOT, "Procfile"), "utf8"));
  const command = procfile.release;
  if (command === undefined) {
    print("The Procfile has no release: line; nothing to demonstrate.");
    return 1;
  }

  print(
    `Simulated Heroku pipeline promotion: one slug, ${apps.length} apps (${apps.join(", ")}), one database.`,
  );
  const work = mkdtempSync(join(tmpdir(), "release-demo-"));
  // Traversable by the server's OS user when we run as root.
  chmodSync(work, 0o755);
  let server: LocalPostgres | undefined;
  let keep = false;
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    // 1. The build: heroku-postbuild stamps SOURCE_VERSION (set during the build only) into the slug.
    const slug = join(work, "slug");
    mkdirSync(slug);
    const idFile = join(slug, ".release-id");
    const sourceVersion = gitHead(ROOT) ?? randomBytes(20).toString("hex");
    const stamped = spawnSync(process.execPath, [STAMP], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, SOURCE_VERSION: sourceVersion, RELEASE_ID_FILE: idFile },
      encoding: "utf8",
    });
    const releaseId = readFileSync(idFile, "utf8").trim();
    print(`  build:    ${stamped.stderr.trim().replace(/^\[release\] build: /, "heroku-postbuild ")}`);

    // 2. The database both apps are attached to (heroku addons:attach): fresh, temporary.
    server = await startLocalPostgres({
      dataDir: join(work, "pgdata"),
      passwordFile: join(work, "password"),
      throwaway: true,
      log: (line) => print(`  database: ${line}`),
    });
    print(
      `  database: embedded PostgreSQL ${server.version} at ${server.displayUrl} (temporary; removed at the end)`,
    );
    print(`  Procfile: release: ${command}`);
    print(`  promote:  starting the release phase of ${apps.length} apps at the same moment\n`);

    // 3. The promotion: every app's release phase at once, each with its own Heroku environment.
    const emptyEnvFile = join(work, "no.env");
    writeFileSync(emptyEnvFile, "");
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: process.env.LANG ?? "C.UTF-8",
      NODE_ENV: "production",
      DATABASE_URL: server.url,
      // The slug's .release-id: the demo runs from this checkout, so it points at the stamped file.
      RELEASE_ID_FILE: idFile,
      // A slug has no .env (it is git-ignored): keep a developer's .env out of the simulated apps.
      RELEASE_ENV_FILE: emptyEnvFile,
      DOTENV_CONFIG_QUIET: "true",
      NPM_CONFIG_UPDATE_NOTIFIER: "false",
      NPM_CONFIG_FUND: "false",
    };
    const width = Math.max(...apps.map((a) => a.length));
    const t0 = Date.now();
    const started = apps.map((app) => startReleasePhase(app, command, env, t0, width, print));
    const runs = await Promise.all(started.map((s) => s.done));

    // 4. What happened, from the ledger and the data.
    const facts = await readFacts(server.url, releaseId, runs);
    const verdict = judgePromotion(facts);
    print("");
    print(formatTimeline(facts, verdict, `release ${shortReleaseId(releaseId)}`));
    if (interrupted !== undefined) {
      print(`Interrupted by ${interrupted}.`);
      return interrupted === "SIGINT" ? 130 : 143;
    }
    keep = !verdict.ok;
    return verdict.ok ? 0 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (server !== undefined) await server.stop();
    if (keep) print(`The database's files are kept for a look: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const parsed = parseDemoArgs(process.argv.slice(2));
  if ("help" in parsed) {
    console.log(USAGE);
    return 0;
  }
  if ("error" in parsed) {
    console.error(parsed.error);
    return 64;
  }
  try {
    return await demo(parsed, (line) => console.log(line));
  } catch (error) {
    console.error(
      error instanceof LocalPostgresError
        ? error.message
        : `The demo failed: ${(error as Error).stack ?? String(error)}`,
    );
    return error instanceof LocalPostgresError ? 69 : 70;
  }
}

if (isMain(import.meta.url)) process.exitCode = await main();
