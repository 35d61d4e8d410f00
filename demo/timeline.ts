// The demo's verdict and timeline, as pure functions of what happened: each app's process, and what
// the ledger recorded. A promotion is right when exactly one app ran the task and every app succeeded.

export interface AppRun {
  app: string;
  /** HEROKU_RELEASE_VERSION, e.g. "v128". */
  version: string;
  /** DYNO, e.g. "release.4821". */
  dyno: string;
  exitCode: number;
  /** Milliseconds from the moment the promotion started. */
  startedMs: number;
  exitedMs: number;
}

/** A row of the ledger's attempts for this release and task. */
export interface AttemptRecord {
  id: number;
  app: string;
  status: string;
  exitCode: number | null;
  durationMs: number | null;
}

/** A row of the ledger's follower_outcomes for this release and task. */
export interface FollowerRecord {
  app: string;
  outcome: string;
  exitCode: number;
  waitedMs: number;
  attemptId: number | null;
}

export interface PromotionFacts {
  task: string;
  runs: readonly AppRun[];
  attempts: readonly AttemptRecord[];
  followers: readonly FollowerRecord[];
  /** Checks of the data itself (e.g. "the backfill ran twice"), found by the caller. */
  dataProblems?: readonly string[];
}

export interface Verdict {
  ok: boolean;
  /** The apps that ran the task. */
  leaders: string[];
  problems: string[];
}

const FOLLOWED = new Set(["succeeded", "already-done"]);

export function judgePromotion(facts: PromotionFacts): Verdict {
  const { task, runs, attempts, followers } = facts;
  const problems: string[] = [];
  const leaders = [...new Set(attempts.map((a) => a.app))];
  if (attempts.length === 0) problems.push(`no app ran ${task}.`);
  if (attempts.length > 1) {
    problems.push(
      `${task} ran ${attempts.length} times (by ${attempts.map((a) => `${a.app} #${a.id}`).join(", ")}); it must run once.`,
    );
  }
  for (const attempt of attempts) {
    if (attempt.status !== "succeeded")
      problems.push(`${attempt.app}'s attempt #${attempt.id} ended ${attempt.status}.`);
  }
  const leading = attempts.length === 1 ? attempts[0] : undefined;
  for (const run of runs) {
    if (run.exitCode !== 0) problems.push(`${run.app}'s release phase exited ${run.exitCode}.`);
    if (leaders.includes(run.app)) continue;
    const outcome = followers.find((f) => f.app === run.app);
    if (outcome === undefined) problems.push(`${run.app} neither ran ${task} nor recorded how it ended.`);
    else if (!FOLLOWED.has(outcome.outcome)) problems.push(`${run.app} ended ${outcome.outcome}.`);
    else if (leading !== undefined && outcome.attemptId !== leading.id) {
      problems.push(`${run.app} followed attempt #${outcome.attemptId ?? "none"}, not #${leading.id}.`);
    }
  }
  problems.push(...(facts.dataProblems ?? []));
  return { ok: problems.length === 0, leaders, problems };
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

/** Seconds with one decimal: the demo's waits are a few seconds long, and "3 s" hides the difference. */
function formatDuration(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function seconds(ms: number): string {
  return `+${formatDuration(ms)}`;
}

/** One line per app: who led, who waited and how long, how each ended; then the verdict. */
export function formatTimeline(facts: PromotionFacts, verdict: Verdict, releaseLabel: string): string {
  const { task, runs, attempts, followers } = facts;
  const byId = new Map(attempts.map((a) => [a.id, a]));
  const order = [...runs].sort(
    (a, b) =>
      Number(verdict.leaders.includes(b.app)) - Number(verdict.leaders.includes(a.app)) ||
      a.exitedMs - b.exitedMs,
  );
  const appWidth = Math.max(...runs.map((r) => r.app.length), 3);
  const dynoWidth = Math.max(...runs.map((r) => r.dyno.length), 4);
  const lines = [`Timeline of ${releaseLabel} (task ${task}; times from the promotion):`];
  for (const run of order) {
    const attempt = attempts.find((a) => a.app === run.app);
    const follower = followers.find((f) => f.app === run.app);
    let role: string;
    let what: string;
    if (attempt !== undefined) {
      role = "LEADER";
      const took = attempt.durationMs === null ? "" : ` in ${formatDuration(attempt.durationMs)}`;
      what = `ran ${task} (attempt #${attempt.id}): ${attempt.status}${took}`;
    } else if (follower !== undefined) {
      const on = follower.attemptId === null ? undefined : byId.get(follower.attemptId);
      const whose = on === undefined ? "" : ` for ${on.app}'s attempt #${on.id}`;
      role = "follower";
      what =
        follower.outcome === "succeeded"
          ? `waited ${formatDuration(follower.waitedMs)}${whose}, which succeeded`
          : follower.outcome === "already-done"
            ? `found ${task} already done${whose}; waited ${formatDuration(follower.waitedMs)}`
            : `${follower.outcome} after ${formatDuration(follower.waitedMs)}${whose}`;
    } else {
      role = "?";
      what = "left no record in the ledger";
    }
    lines.push(
      `  ${pad(run.app, appWidth)}  ${pad(run.version, 5)} ${pad(run.dyno, dynoWidth)}  ${seconds(run.startedMs)} -> ${pad(seconds(run.exitedMs), 7)}  ${pad(role, 8)}  ${what}; exit ${run.exitCode}`,
    );
  }
  const n = runs.length;
  if (verdict.ok) {
    lines.push(
      `Result: exactly one app ran ${task} (${verdict.leaders.join("")}); the other ${n - 1} waited for it; all ${n} apps succeeded.`,
    );
  } else {
    lines.push(`Result: FAILED`);
    for (const problem of verdict.problems) lines.push(`  - ${problem}`);
  }
  return lines.join("\n");
}
