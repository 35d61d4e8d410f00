// Item 1 (and the memory figures of item 5): how soon a waiting follower knows the leader's outcome.
//
// Each round starts a real leader (`--role leader`, its command a gate that ends when the bench says)
// and a few real followers (`--role follower`). When every follower is waiting (it has LISTENed and seen
// the running attempt), the bench opens the gate; the leader records the outcome with one statement
// (UPDATE ... finished_at = clock_timestamp(), pg_notify) whose implicit transaction commits at once and
// delivers the NOTIFY. "Commit" is that finished_at: taken inside the statement, just before the commit,
// so the figures include the commit itself. A follower has "decided" when its follower_outcomes row is
// written (recorded_at, clock_timestamp() of its INSERT: same server clock), and has "exited" when the
// bench sees its process end (the bench's clock, mapped to the server's by clockOffset()).
// The bench's own NOTIFY receipt is only used to know the round is over: on 2 busy cores the bench
// process itself is sometimes scheduled after the followers, so it is no reference for "commit".

import path from "node:path";
import { clockOffset, listenLedger, LEDGER_SCHEMA } from "../lib/database.js";
import { DECISION, Gate, peakRssMb, startCli, type BenchContext } from "../lib/context.js";
import { throughPooler } from "../lib/database.js";
import { killAll, sleep, withTimeout, type Proc } from "../lib/processes.js";
import { startBouncer } from "../../test/support/pgbouncer.js";

export interface WakeResult {
  rounds: number;
  followersPerRound: number;
  decided: number[];
  exited: number[];
  /** When the bench's own listener got the NOTIFY, after finished_at (for the method note). */
  notifyAfterFinishedAt: number[];
  leaderRssMb: number[];
  followerRssMb: number[];
  failures: string[];
}

/** Has the follower LISTENed (or, through a pooler, begun polling) and read the ledger and seen the leader's attempt running? */
function waitingOnRunningAttempt(_line: string, all: readonly string[]): boolean {
  const decisions = all.filter((line) => DECISION.test(line));
  const last = decisions.at(-1) ?? "";
  return decisions.length >= 2 && /decision: wait \(latest #\d+ running/.test(last);
}

export async function measureWake(
  ctx: BenchContext,
  options: { rounds: number; followers: number; pooled?: boolean },
): Promise<WakeResult> {
  const direct = await ctx.server.createDatabase(options.pooled === true ? "wake_pooled" : "wake");
  // Through PgBouncer in transaction mode (pool size 4), the processes under test get the pooled URL.
  const bouncer =
    options.pooled === true
      ? await startBouncer(direct.appUrl, { poolMode: "transaction", poolSize: 4 })
      : undefined;
  const db = bouncer === undefined ? direct : throughPooler(direct, bouncer.url);
  const listener = await listenLedger(db.adminUrl);
  const result: WakeResult = {
    rounds: options.rounds,
    followersPerRound: options.followers,
    decided: [],
    exited: [],
    notifyAfterFinishedAt: [],
    leaderRssMb: [],
    followerRssMb: [],
    failures: [],
  };
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const release = `wake-${round}`;
      const gate = new Gate(path.join(ctx.ws.dir, `gate-wake-${round}`));
      const leader = startCli(ctx, db, [
        "run",
        "--role",
        "leader",
        "--release-id",
        release,
        "--app",
        "leader",
        "--verbose",
        "--",
        "cat",
        gate.file,
      ]);
      const followers: Proc[] = [];
      for (let i = 1; i <= options.followers; i++) {
        followers.push(
          startCli(ctx, db, [
            "run",
            "--role",
            "follower",
            "--release-id",
            release,
            "--app",
            `follower-${i}`,
            "--verbose",
          ]),
        );
      }
      const all = [leader, ...followers];
      try {
        await leader.waitFor((line) => line.includes("running migrate"), 30_000);
        await Promise.all(followers.map((f) => f.waitFor(waitingOnRunningAttempt, 30_000)));
        // Let the last start-up work (progress line, GC) finish: only the wake-up is measured.
        await sleep(30);
        await gate.open();
        const finished = await listener.next((e) => e.event === "finished" && e.release === release, 30_000);
        await withTimeout(
          Promise.all(all.map((p) => p.exited)),
          30_000,
          `round ${round}: the processes did not exit after the commit`,
        );
        if (leader.exit?.code !== 0)
          result.failures.push(`round ${round}: leader exited ${leader.exit?.code}`);
        const offset = await clockOffset(db);
        const rows = await db.query<{ pid: number; at_ms: number; outcome: string }>(
          `SELECT pid, outcome, extract(epoch FROM recorded_at) * 1000 AS at_ms
             FROM ${LEDGER_SCHEMA}.follower_outcomes WHERE release_id = $1`,
          [release],
        );
        const attempt = await db.query<{ at_ms: number }>(
          `SELECT extract(epoch FROM finished_at) * 1000 AS at_ms FROM ${LEDGER_SCHEMA}.attempts WHERE id = $1`,
          [finished.attempt],
        );
        const committedAt = Number(attempt[0]?.at_ms);
        result.notifyAfterFinishedAt.push(finished.at + offset - committedAt);
        for (const follower of followers) {
          const row = rows.find((r) => r.pid === follower.pid);
          if (follower.exit?.code !== 0 || row === undefined || row.outcome !== "succeeded") {
            result.failures.push(
              `round ${round}: follower pid ${follower.pid} exited ${follower.exit?.code}, outcome ${row?.outcome ?? "none"}`,
            );
            continue;
          }
          result.decided.push(Number(row.at_ms) - committedAt);
          if (follower.exit !== undefined) result.exited.push(follower.exit.at + offset - committedAt);
          const rss = peakRssMb(follower);
          if (rss !== undefined) result.followerRssMb.push(rss);
        }
        const rss = peakRssMb(leader);
        if (rss !== undefined) result.leaderRssMb.push(rss);
      } catch (error) {
        result.failures.push(`round ${round}: ${(error as Error).message.split("\n")[0]}`);
        await killAll(all);
      } finally {
        gate.remove();
      }
      if (round % 20 === 0) ctx.log(`  wake: ${round}/${options.rounds} rounds`);
    }
  } finally {
    await listener.close();
    bouncer?.stop();
  }
  return result;
}
