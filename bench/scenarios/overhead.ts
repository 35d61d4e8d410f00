// Items 2 and 7: what the orchestrator adds to a release whose command does nothing. Each round runs, in
// a random order, bare `true`, `node -e 0` (the floor of any Node CLI), `release-orchestrator --version`
// (start-up without a database: loading the bundle) and `release-orchestrator run -- true` as a leader
// with a new release id (connect, lock, ledger, run, record): all from spawn to exit, one at a time.
// With a standalone binary built (npm run build:binary), the same two commands of the binary join each
// round (item 7), and a few extra leaders of each build report their peak RSS with --verbose.

import { statSync } from "node:fs";
import path from "node:path";
import { peakRssMb, startCli, type BenchContext } from "../lib/context.js";
import { cleanEnv } from "../lib/environment.js";
import { lastWords, timeProcess } from "../lib/processes.js";
import { shuffle } from "../lib/stats.js";

export interface OverheadResult {
  rounds: number;
  trueMs: number[];
  nodeMs: number[];
  versionMs: number[];
  runMs: number[];
  /** Item 7, when a binary was built: its size, its two commands, and both builds' peak RSS. */
  binary?: {
    bytes: number;
    versionMs: number[];
    runMs: number[];
    nodeRssMb: number[];
    binaryRssMb: number[];
  };
  failures: string[];
}

type Variant = "true" | "node" | "version" | "run" | "binary-version" | "binary-run";

/** Peak RSS samples per build: leaders of `run -- true` with --verbose, outside the timed rounds. */
const RSS_SAMPLES = 5;

export async function measureOverhead(
  ctx: BenchContext,
  options: { rounds: number; warmup: number },
): Promise<OverheadResult> {
  const db = await ctx.server.createDatabase("overhead");
  const cwd = path.join(ctx.ws.dir, "work");
  const env = cleanEnv({});
  const binary = ctx.ws.binary;
  const result: OverheadResult = {
    rounds: options.rounds,
    trueMs: [],
    nodeMs: [],
    versionMs: [],
    runMs: [],
    ...(binary === undefined
      ? {}
      : {
          binary: {
            bytes: statSync(binary).size,
            versionMs: [],
            runMs: [],
            nodeRssMb: [],
            binaryRssMb: [],
          },
        }),
    failures: [],
  };
  let runs = 0;
  const leader = async (via: string | undefined, verbose: boolean) => {
    const proc = startCli(
      ctx,
      db,
      [
        "run",
        "--release-id",
        `overhead-${++runs}`,
        "--app",
        "leader",
        ...(verbose ? ["--verbose"] : []),
        "--",
        "true",
      ],
      {},
      via,
    );
    const exit = await proc.exited;
    if (exit.code !== 0)
      result.failures.push(
        `${via === undefined ? "" : "binary "}run -- true exited ${exit.code}: ${lastWords(proc)}`,
      );
    return { ms: exit.at - proc.spawnedAt, proc };
  };
  const once = async (variant: Variant): Promise<number> => {
    switch (variant) {
      case "true":
        return (await timeProcess("true", [], { env, cwd })).ms;
      case "node":
        return (await timeProcess(process.execPath, ["-e", "0"], { env, cwd })).ms;
      case "version":
        return (await timeProcess(process.execPath, [ctx.ws.cli, "--version"], { env, cwd })).ms;
      case "run":
        return (await leader(undefined, false)).ms;
      case "binary-version":
        return (await timeProcess(binary ?? "", ["--version"], { env, cwd })).ms;
      case "binary-run":
        return (await leader(binary, false)).ms;
    }
  };
  const variants: Variant[] = ["true", "node", "version", "run"];
  if (binary !== undefined) variants.push("binary-version", "binary-run");
  const samples: Record<Variant, number[]> = {
    true: result.trueMs,
    node: result.nodeMs,
    version: result.versionMs,
    run: result.runMs,
    "binary-version": result.binary?.versionMs ?? [],
    "binary-run": result.binary?.runMs ?? [],
  };
  // The first runs warm the page cache and create the ledger; they are not counted.
  for (let i = 0; i < options.warmup; i++) for (const variant of variants) await once(variant);
  for (let round = 0; round < options.rounds; round++) {
    for (const variant of shuffle<Variant>(variants)) samples[variant].push(await once(variant));
  }
  if (result.binary !== undefined) {
    for (let i = 0; i < RSS_SAMPLES; i++) {
      for (const [via, into] of [
        [undefined, result.binary.nodeRssMb],
        [binary, result.binary.binaryRssMb],
      ] as const) {
        const rss = peakRssMb((await leader(via, true)).proc);
        if (rss !== undefined) into.push(rss);
      }
    }
  }
  return result;
}
