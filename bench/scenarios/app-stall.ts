// Item 9: the app-stall scenario of issue 20. The app holds a transaction open on `items` (a session
// idle in transaction for the blocker window), and its traffic session queries `items` every 200 ms.
// Right after the blocker opened, a release runs `ALTER TABLE items ADD COLUMN c<n> int` with psql
// (--single-transaction, ON_ERROR_STOP): the ALTER waits for its ACCESS EXCLUSIVE lock behind the open
// transaction, and every app query on `items` queues behind the ALTER. Side by side in one run, in a
// rotating order, on one database: (a) psql alone, (b) `release-orchestrator run --lock-wait off`,
// (c) `release-orchestrator run` with the defaults (the lock-queue guard cancels the ALTER after 3 s
// and runs it again after 5 s, 10 s, …). Each run reports every app query's latency, the release's time
// (spawn to exit), its exit code, how many tries the leader needed (the ledger's attempts.tries) and
// whether the column exists afterwards.

import path from "node:path";
import type pg from "pg";
import { startCli, type BenchContext } from "../lib/context.js";
import { LEDGER_SCHEMA, openClient, type BenchDatabase } from "../lib/database.js";
import { cleanEnv } from "../lib/environment.js";
import { lastWords, now, sleep, startProcess, withTimeout, type Proc } from "../lib/processes.js";

export const STALL_VARIANTS = ["bare", "guard-off", "defaults"] as const;
export type StallVariant = (typeof STALL_VARIANTS)[number];

/** How often the app's traffic session queries `items` (ms between the end of one and the next). */
const TRAFFIC_EVERY_MS = 200;
/** Traffic before the blocker opens and after both the blocker and the release have ended. */
const TRAFFIC_MARGIN_MS = 1000;

export interface StallRun {
  variant: StallVariant;
  rep: number;
  /** How long the blocker held its transaction open (BEGIN's answer to COMMIT sent). */
  blockerMs: number;
  /** Every app query of the run: latency (send → answer), in ms. */
  latencies: number[];
  /** The release: spawn → exit, its exit code. */
  releaseMs: number;
  exitCode: number | null;
  /** Tries the leader made (cancelled tries in attempts.tries, + 1 for the last); undefined when bare. */
  tries: number | undefined;
  /** The attempt's status in the ledger (undefined when bare). */
  status: string | undefined;
  /** Whether the column of this run exists afterwards (the migration took effect once). */
  columnAdded: boolean;
  failure: string | undefined;
}

export async function measureAppStall(
  ctx: BenchContext,
  options: { reps: number; blockerMs: number },
): Promise<StallRun[]> {
  const db = await ctx.server.createDatabase("app_stall");
  const setup = await openClient(db.appUrl);
  try {
    await setup.query("CREATE TABLE items (id serial PRIMARY KEY, name text)");
    await setup.query("INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 1000) g");
  } finally {
    await setup.end();
  }
  // The ledger is created by the first run; do it before the timed runs so none of them pays for it.
  const warm = startCli(ctx, db, ["run", "--release-id", "app-stall-warmup", "--app", "web", "--", "true"]);
  const warmExit = await warm.exited;
  if (warmExit.code !== 0) throw new Error(`warm-up run exited ${warmExit.code}: ${lastWords(warm)}`);

  const runs: StallRun[] = [];
  let column = 0;
  for (let rep = 0; rep < options.reps; rep++) {
    const order = STALL_VARIANTS.map(
      (_, i) => STALL_VARIANTS[(i + rep) % STALL_VARIANTS.length] as StallVariant,
    );
    for (const variant of order) {
      const run = await runOnce(ctx, db, variant, rep, ++column, options.blockerMs);
      ctx.log(
        `9 app-stall ${variant} #${rep + 1}: worst app query ${Math.max(...run.latencies).toFixed(0)} ms, release ${run.releaseMs.toFixed(0)} ms (exit ${run.exitCode}${run.tries === undefined ? "" : `, ${run.tries} tries`})${run.failure === undefined ? "" : `; ${run.failure}`}`,
      );
      runs.push(run);
    }
  }
  return runs;
}

/** The app's traffic: one query on `items` every 200 ms on its own session, each latency recorded. */
function startTraffic(client: pg.Client): { latencies: number[]; stop(): Promise<void> } {
  const latencies: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const sent = now();
      await client.query("SELECT count(*) FROM items");
      latencies.push(now() - sent);
      await sleep(TRAFFIC_EVERY_MS);
    }
  })();
  return {
    latencies,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

async function runOnce(
  ctx: BenchContext,
  db: BenchDatabase,
  variant: StallVariant,
  rep: number,
  column: number,
  blockerMs: number,
): Promise<StallRun> {
  const releaseId = `app-stall-${variant}-${rep}`;
  const migration = `psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -c "ALTER TABLE items ADD COLUMN c${column} int"`;
  const web1 = await openClient(db.appUrl);
  const web2 = await openClient(db.appUrl);
  const clients = [web1, web2];
  let release: Proc | undefined;
  try {
    await web1.query("SET application_name = 'web.1'");
    await web2.query("SET application_name = 'web.2'");
    const traffic = startTraffic(web2);
    await sleep(TRAFFIC_MARGIN_MS);

    // The blocker: a transaction that has read `items` and sits idle in transaction for the window.
    await web1.query("BEGIN");
    await web1.query("SELECT count(*) FROM items");
    const opened = now();
    const blockerDone = (async () => {
      await sleep(blockerMs);
      const committing = now();
      await web1.query("COMMIT");
      return committing - opened;
    })();

    const cwd = path.join(ctx.ws.dir, "work");
    release =
      variant === "bare"
        ? startProcess("sh", ["-c", migration], { env: cleanEnv({ DATABASE_URL: db.appUrl }), cwd })
        : startCli(ctx, db, [
            "run",
            "--release-id",
            releaseId,
            "--app",
            "web",
            ...(variant === "guard-off" ? ["--lock-wait", "off"] : []),
            "--",
            "sh",
            "-c",
            migration,
          ]);
    let failure: string | undefined;
    const exit = await withTimeout(release.exited, blockerMs + 120_000, "the release did not end").catch(
      (error: Error) => {
        failure = error.message;
        return undefined;
      },
    );
    const held = await blockerDone;
    await sleep(TRAFFIC_MARGIN_MS);
    await traffic.stop();

    const added = await db.query(
      "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = $1",
      [`c${column}`],
    );
    let tries: number | undefined;
    let status: string | undefined;
    if (variant !== "bare") {
      const rows = await db.query<{ status: string; cancels: number }>(
        `SELECT status, jsonb_array_length(tries) AS cancels FROM ${LEDGER_SCHEMA}.attempts
          WHERE release_id = $1 ORDER BY id DESC LIMIT 1`,
        [releaseId],
      );
      status = rows[0]?.status;
      tries = rows[0] === undefined ? undefined : rows[0].cancels + 1;
    }
    if (failure === undefined && exit?.code !== 0) failure = `exit ${exit?.code}: ${lastWords(release)}`;
    if (failure === undefined && added.length !== 1) failure = `column c${column} missing after exit 0`;
    return {
      variant,
      rep,
      blockerMs: held,
      latencies: traffic.latencies,
      releaseMs: (exit?.at ?? now()) - release.spawnedAt,
      exitCode: exit?.code ?? null,
      tries,
      status,
      columnAdded: added.length === 1,
      failure,
    };
  } finally {
    release?.kill("SIGKILL");
    for (const client of clients) await client.end().catch(() => undefined);
  }
}
