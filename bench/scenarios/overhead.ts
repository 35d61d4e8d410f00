// Item 2: what the orchestrator adds to a release whose command does nothing. Each round runs, in a
// random order, bare `true`, `node -e 0` (the floor of any Node CLI), `release-orchestrator --version`
// (start-up without a database: loading the bundle) and `release-orchestrator run -- true` as a leader
// with a new release id (connect, lock, ledger, run, record): all from spawn to exit, one at a time.

import path from "node:path";
import { startCli, type BenchContext } from "../lib/context.js";
import { cleanEnv } from "../lib/environment.js";
import { lastWords, timeProcess } from "../lib/processes.js";
import { shuffle } from "../lib/stats.js";

export interface OverheadResult {
  rounds: number;
  trueMs: number[];
  nodeMs: number[];
  versionMs: number[];
  runMs: number[];
  failures: string[];
}

type Variant = "true" | "node" | "version" | "run";

export async function measureOverhead(
  ctx: BenchContext,
  options: { rounds: number; warmup: number },
): Promise<OverheadResult> {
  const db = await ctx.server.createDatabase("overhead");
  const cwd = path.join(ctx.ws.dir, "work");
  const env = cleanEnv({});
  const result: OverheadResult = {
    rounds: options.rounds,
    trueMs: [],
    nodeMs: [],
    versionMs: [],
    runMs: [],
    failures: [],
  };
  let runs = 0;
  const once = async (variant: Variant): Promise<number> => {
    switch (variant) {
      case "true":
        return (await timeProcess("true", [], { env, cwd })).ms;
      case "node":
        return (await timeProcess(process.execPath, ["-e", "0"], { env, cwd })).ms;
      case "version": {
        const { ms } = await timeProcess(process.execPath, [ctx.ws.cli, "--version"], { env, cwd });
        return ms;
      }
      case "run": {
        const proc = startCli(ctx, db, [
          "run",
          "--release-id",
          `overhead-${++runs}`,
          "--app",
          "leader",
          "--",
          "true",
        ]);
        const exit = await proc.exited;
        if (exit.code !== 0) result.failures.push(`run -- true exited ${exit.code}: ${lastWords(proc)}`);
        return exit.at - proc.spawnedAt;
      }
    }
  };
  // The first runs warm the page cache and create the ledger; they are not counted.
  for (let i = 0; i < options.warmup; i++)
    for (const variant of ["true", "node", "version", "run"] as const) await once(variant);
  for (let round = 0; round < options.rounds; round++) {
    for (const variant of shuffle<Variant>(["true", "node", "version", "run"])) {
      const took = await once(variant);
      ({ true: result.trueMs, node: result.nodeMs, version: result.versionMs, run: result.runMs })[
        variant
      ].push(took);
    }
  }
  return result;
}
