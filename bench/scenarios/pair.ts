// Item 6: the pair scenario (two apps release at the same moment; the migration takes 2 s), side by
// side in the same run: (a) two bare `node-pg-migrate up` (its default lock fails fast), (b) both with
// `--advisory-lock-mode wait` (they block inside pg_advisory_lock), (c) both under `flock` on one file
// (serialise everything: each runs its command in turn), (d) both under the orchestrator. Every variant
// runs the same node-pg-migrate (9.0.0, the first version with the wait mode) and the same migration,
// on a fresh database, in a rotating order; each reports wall time (first spawn to last exit), how many
// times the migration ran and how many of the two processes failed.

import path from "node:path";
import { startCli, type BenchContext } from "../lib/context.js";
import { openClient } from "../lib/database.js";
import { cleanEnv, REPO } from "../lib/environment.js";
import { lastWords, startProcess, type Proc } from "../lib/processes.js";

export const PAIR_VARIANTS = ["fail-fast", "wait", "flock", "orchestrator"] as const;
export type PairVariant = (typeof PAIR_VARIANTS)[number];

export interface PairRun {
  variant: PairVariant;
  wallMs: number;
  executions: number;
  failed: number;
  reasons: string[];
}

const NODE_PG_MIGRATE = path.join(
  REPO,
  "bench",
  "peers",
  "node_modules",
  "node-pg-migrate",
  "bin",
  "node-pg-migrate.js",
);
const MIGRATIONS = path.join(REPO, "bench", "fixtures", "pair-migrations");
const APPS = ["s-app", "s-admin"] as const;

export async function measurePair(ctx: BenchContext, options: { reps: number }): Promise<PairRun[]> {
  const runs: PairRun[] = [];
  for (let rep = 0; rep < options.reps; rep++) {
    // Rotate the order so no variant always runs first (or right after the heaviest one).
    const order = PAIR_VARIANTS.map((_, i) => PAIR_VARIANTS[(i + rep) % PAIR_VARIANTS.length] as PairVariant);
    for (const variant of order) runs.push(await runPair(ctx, variant, rep));
  }
  return runs;
}

async function runPair(ctx: BenchContext, variant: PairVariant, rep: number): Promise<PairRun> {
  const db = await ctx.server.createDatabase(`pair_${variant.replace("-", "_")}`);
  const setup = await openClient(db.appUrl);
  try {
    await setup.query(
      "CREATE TABLE migration_runs (id serial PRIMARY KEY, backend_pid integer, ran_at timestamptz DEFAULT clock_timestamp())",
    );
  } finally {
    await setup.end();
  }
  const cwd = path.join(ctx.ws.dir, "work");
  const env = cleanEnv({ DATABASE_URL: db.appUrl });
  const migrate = [process.execPath, NODE_PG_MIGRATE, "up", "-m", MIGRATIONS];
  const lockFile = path.join(ctx.ws.dir, `pair-${rep}.lock`);
  const start = (app: string): Proc => {
    switch (variant) {
      case "fail-fast":
        return startProcess(process.execPath, migrate.slice(1), { env, cwd, stdout: true });
      case "wait":
        return startProcess(process.execPath, [...migrate.slice(1), "--advisory-lock-mode", "wait"], {
          env,
          cwd,
          stdout: true,
        });
      case "flock":
        return startProcess("flock", [lockFile, ...migrate], { env, cwd, stdout: true });
      case "orchestrator":
        return startCli(ctx, db, ["run", "--release-id", `pair-${rep}`, "--app", app, "--", ...migrate]);
    }
  };
  const procs = APPS.map(start);
  const exits = await Promise.all(procs.map((p) => p.exited));
  const first = Math.min(...procs.map((p) => p.spawnedAt));
  const rows = await db.query<{ count: number }>("SELECT count(*)::int AS count FROM migration_runs");
  const reasons = procs.filter((p) => p.exit?.code !== 0).map((p) => lastWords(p));
  return {
    variant,
    wallMs: Math.max(...exits.map((e) => e.at)) - first,
    executions: rows[0]?.count ?? 0,
    failed: exits.filter((e) => e.code !== 0).length,
    reasons,
  };
}
