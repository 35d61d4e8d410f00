// Item 3: a contender that arrives after the release succeeded (the second app of a pipeline promotion
// whose release phase starts late, a pod restarted after the rollout). Timed from spawn to its decision
// (its "already succeeded ... nothing to do" line) and to its exit, interleaved with `node -e 0`.
// One more run goes through a counting proxy: how many connections and round trips it needed, and
// which statements they were.

import path from "node:path";
import { startCli, type BenchContext } from "../lib/context.js";
import { LEDGER_SCHEMA, startCountingProxy, viaPort, type ProxyStats } from "../lib/database.js";
import { cleanEnv } from "../lib/environment.js";
import { lastWords, timeProcess } from "../lib/processes.js";

export interface AlreadyDoneResult {
  runs: number;
  decidedMs: number[];
  exitMs: number[];
  nodeMs: number[];
  proxy: ProxyStats;
  /** The round trip (1-based, after authentication) whose answer the decision is taken on. */
  decisionAfterRoundTrip: number;
  failures: string[];
}

export async function measureAlreadyDone(
  ctx: BenchContext,
  options: { runs: number },
): Promise<AlreadyDoneResult> {
  const db = await ctx.server.createDatabase("already_done");
  const release = "already-done-1";
  const first = startCli(ctx, db, ["run", "--release-id", release, "--app", "s-app", "--", "true"]);
  if ((await first.exited).code !== 0) throw new Error(`the first release failed: ${lastWords(first)}`);
  const cwd = path.join(ctx.ws.dir, "work");
  const result: AlreadyDoneResult = {
    runs: options.runs,
    decidedMs: [],
    exitMs: [],
    nodeMs: [],
    proxy: { connections: 0, statements: [], roundTrips: [] },
    decisionAfterRoundTrip: Number.NaN,
    failures: [],
  };
  const late = async (url?: string) => {
    const proc = startCli(
      ctx,
      db,
      ["run", "--release-id", release, "--app", "s-admin", "--", "true"],
      url === undefined ? {} : { DATABASE_URL: url },
    );
    const exit = await proc.exited;
    if (exit.code !== 0) result.failures.push(`exited ${exit.code}: ${lastWords(proc)}`);
    return { proc, exit };
  };
  for (let i = 0; i < options.runs + 1; i++) {
    const { proc, exit } = await late();
    const node = await timeProcess(process.execPath, ["-e", "0"], { env: cleanEnv({}), cwd });
    if (i === 0) continue; // warm-up
    const rows = await db.query<{ outcome: string }>(
      `SELECT outcome FROM ${LEDGER_SCHEMA}.follower_outcomes WHERE pid = $1 AND release_id = $2`,
      [proc.pid, release],
    );
    const decidedAt = proc.lineTimes.find((t) => t.line.includes("already succeeded"))?.at;
    if (rows[0]?.outcome !== "already-done" || decidedAt === undefined) {
      result.failures.push(`pid ${proc.pid}: outcome ${rows[0]?.outcome ?? "none"}: ${lastWords(proc)}`);
      continue;
    }
    result.decidedMs.push(decidedAt - proc.spawnedAt);
    result.exitMs.push(exit.at - proc.spawnedAt);
    result.nodeMs.push(node.ms);
  }
  const proxy = await startCountingProxy(
    new URL(db.appUrl).port === "" ? 5432 : Number(new URL(db.appUrl).port),
  );
  try {
    await late(viaPort(db.appUrl, proxy.port));
  } finally {
    await proxy.close();
  }
  result.proxy = proxy.stats;
  // The decision follows the first read of the ledger (attempts); count the round trips up to it.
  const statements = proxy.stats.statements[0] ?? [];
  result.decisionAfterRoundTrip = statements.findIndex((sql) => /\battempts\b/.test(sql)) + 1;
  return result;
}
