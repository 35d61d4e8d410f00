// Item 4: N contenders (role auto, one release id) against a server with max_connections=50.
//
// The command appends a line to a file (that is an execution) and then waits on a gate. The bench
// starts the contenders at the pace the machine can take (at most `startingLimit` of them starting at
// once, at most `cap` alive at once: each is a Node process of ~35 MB private memory and ~0.2 s CPU) and
// opens the gate when every live contender is in the race: waiting (it has decided to wait) or retrying
// a refused connection. Contenders beyond the cap start when earlier ones have exited, i.e. after the
// outcome is recorded; they take the already-done path. A sampler counts the application role's
// sessions in pg_stat_activity every 20 ms.

import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import type pg from "pg";
import { Gate, startCli, type BenchContext } from "../lib/context.js";
import { clockOffset, LEDGER_SCHEMA, openClient, throughPooler, type BenchServer } from "../lib/database.js";
import { startBouncer } from "../../test/support/pgbouncer.js";
import { killAll, lastWords, now, sleep, withTimeout, type Proc } from "../lib/processes.js";

export interface ContentionResult {
  n: number;
  cap: number;
  executions: number;
  attempts: number;
  failures: number;
  failureSamples: string[];
  /** From the leader's finished_at to the last contender's exit. */
  finishToLastExitMs: number;
  /** The same, for the contenders that were alive (racing) when the leader finished. */
  finishToLastRacerExitMs: number;
  racersAtFinish: number;
  peakConnections: number;
  /** Connection attempts the server refused ("too many clients"), as reported with --verbose. */
  refusals: number;
  /** Contenders that waited without holding a connection (the crowded-server mode). */
  waitedWithoutConnection: number;
  outcomes: Record<string, number>;
  /** From the first spawn to the gate opening. */
  rampMs: number;
  gateForced: boolean;
}

const SCRIPT = 'echo run >> "$1"; exec cat "$2" > /dev/null';

interface Contender {
  proc: Proc;
  /** Decided to wait, or was refused a connection and is retrying. */
  racing: boolean;
  leader: boolean;
}

export async function measureContention(
  ctx: BenchContext,
  server: BenchServer,
  options: { n: number; cap: number; startingLimit: number; rampTimeoutMs: number; pooled?: boolean },
): Promise<ContentionResult> {
  const { n } = options;
  const cap = Math.min(n, options.cap);
  const direct = await server.createDatabase(`contention_${n}${options.pooled === true ? "_pooled" : ""}`);
  // Through PgBouncer in transaction mode with a pool of 4 server connections for all N contenders.
  const bouncer =
    options.pooled === true
      ? await startBouncer(direct.appUrl, { poolMode: "transaction", poolSize: 4 })
      : undefined;
  const db = bouncer === undefined ? direct : throughPooler(direct, bouncer.url);
  // Item 4 and item 8 both race N=100 in one workspace: each measurement counts its own executions.
  const tag = `${n}${options.pooled === true ? "-pooled" : ""}`;
  const runs = path.join(ctx.ws.dir, `runs-${tag}`);
  rmSync(runs, { force: true });
  const gate = new Gate(path.join(ctx.ws.dir, `gate-contention-${tag}`));
  const release = `contention-${n}`;
  const sampler: pg.Client = await openClient(db.adminUrl);
  let peakConnections = 0;
  let sampling = true;
  const samplerLoop = (async () => {
    while (sampling) {
      const result = await sampler.query<{ used: number }>(
        "SELECT count(*)::int AS used FROM pg_stat_activity WHERE usename = 'bench_app'",
      );
      peakConnections = Math.max(peakConnections, result.rows[0]?.used ?? 0);
      await sleep(20);
    }
  })().catch(() => undefined); // a lost sampler only stops the peak from rising

  const contenders: Contender[] = [];
  let leaderKnown = false;
  const spawnOne = (i: number): void => {
    const proc = startCli(ctx, db, [
      "run",
      "--release-id",
      release,
      "--app",
      `app-${i}`,
      "--verbose",
      "--",
      "sh",
      "-c",
      SCRIPT,
      "sh",
      runs,
      gate.file,
    ]);
    const contender: Contender = { proc, racing: false, leader: false };
    proc.onLine((line) => {
      if (line.includes("running migrate")) leaderKnown = contender.leader = true;
      if (/decision: wait|connect attempt \d+ .*failed/.test(line)) contender.racing = true;
    });
    contenders.push(contender);
  };
  const alive = () => contenders.filter((c) => c.proc.exit === undefined);

  const firstSpawn = now();
  let gateOpenedAt: number | undefined;
  let gateForced = false;
  try {
    let spawned = 0;
    while (spawned < n || gateOpenedAt === undefined) {
      const live = alive();
      const starting = live.filter((c) => !c.racing && !c.leader).length;
      if (spawned < n && live.length < cap && starting < options.startingLimit) {
        spawnOne(++spawned);
        continue;
      }
      if (spawned === n && live.length === 0) break; // all gone without a gate: the rows will say why
      const timedOut = now() - firstSpawn > options.rampTimeoutMs;
      if (gateOpenedAt === undefined && (leaderKnown || timedOut)) {
        // Everyone alive, except the leader (which runs the command), is in the race.
        const allRacing = starting === 0;
        if ((allRacing && (spawned === n || live.length >= cap)) || timedOut) {
          gateForced = !allRacing;
          await sleep(30);
          await gate.open();
          gateOpenedAt = now();
          continue;
        }
      }
      await sleep(5);
    }
    await withTimeout(
      Promise.all(contenders.map((c) => c.proc.exited)),
      180_000,
      `contention N=${n}: the contenders did not all exit after the gate`,
    );
  } catch (error) {
    await killAll(contenders.map((c) => c.proc));
    throw error;
  } finally {
    bouncer?.stop();
    sampling = false;
    await samplerLoop;
    await sampler.end().catch(() => undefined);
    gate.remove();
  }

  const offset = await clockOffset(db);
  const attempts = await db.query<{ id: string; at_ms: number | null }>(
    `SELECT id, extract(epoch FROM finished_at) * 1000 AS at_ms FROM ${LEDGER_SCHEMA}.attempts ORDER BY id`,
  );
  const outcomesRows = await db.query<{ outcome: string; count: number }>(
    `SELECT outcome, count(*)::int AS count FROM ${LEDGER_SCHEMA}.follower_outcomes GROUP BY outcome`,
  );
  const finishedAt = Number(attempts[0]?.at_ms) - offset;
  const exits = contenders.map((c) => c.proc.exit?.at ?? Number.NaN);
  const racers = contenders.filter(
    (c) => c.proc.spawnedAt < finishedAt && (c.proc.exit?.at ?? Number.POSITIVE_INFINITY) >= finishedAt,
  );
  const failed = contenders.filter((c) => c.proc.exit?.code !== 0);
  let executions = 0;
  try {
    executions = readFileSync(runs, "utf8")
      .split("\n")
      .filter((l) => l === "run").length;
  } catch {
    executions = 0;
  }
  return {
    n,
    cap,
    executions,
    attempts: attempts.length,
    failures: failed.length,
    failureSamples: failed.slice(0, 3).map((c) => `exit ${c.proc.exit?.code}: ${lastWords(c.proc)}`),
    finishToLastExitMs: Math.max(...exits) - finishedAt,
    finishToLastRacerExitMs: Math.max(...racers.map((c) => c.proc.exit?.at ?? Number.NaN)) - finishedAt,
    racersAtFinish: racers.length,
    peakConnections,
    refusals: contenders.reduce(
      (sum, c) => sum + c.proc.lines.filter((l) => /too many clients/i.test(l)).length,
      0,
    ),
    waitedWithoutConnection: contenders.filter((c) =>
      c.proc.lines.some((l) => l.includes("without holding one")),
    ).length,
    outcomes: Object.fromEntries(outcomesRows.map((r) => [r.outcome, r.count])),
    rampMs: (gateOpenedAt ?? now()) - firstSpawn,
    gateForced,
  };
}
