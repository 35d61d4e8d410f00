// GET /metrics: what the ledger says, in the Prometheus text exposition format (version 0.0.4).
// The snapshot is read by db/ledger/reads.ts (readMetricsSnapshot); formatMetrics turns it into text.

import { ATTEMPT_STATUSES } from "./records.js";
import { RUN_STATES, type ReleasePhase } from "./release-phase.js";

/** The Content-Type of the text format that Prometheus scrapes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Upper bounds of the attempt duration histogram, in seconds: migrations take seconds to an hour. */
export const DURATION_BUCKETS_SECONDS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600] as const;

export interface MetricsSnapshot {
  lockName: string;
  /** Whether a session holds the advisory lock now. */
  lockHeld: boolean;
  /**
   * Attempts in the ledger by task and status: every status for every task it knows, zeros included,
   * so that an alert on a status's increase fires on its first occurrence too (formatMetrics fills in
   * a status or task the snapshot leaves out, at 0).
   */
  attempts: { task: string; status: string; count: number }[];
  /** Per task: when its latest successful attempt finished (seconds since the epoch). */
  lastSuccess: { task: string; seconds: number }[];
  /** Per task that has attempts: running attempts whose lease (last heartbeat + lease) has not run out. */
  leases: { task: string; held: number }[];
  /** Per task that has attempts or waiters: processes waiting now (a 'waiting' row with a fresh heartbeat). */
  waiters: { task: string; count: number }[];
  /** Per task that has attempts: the statements of its commands the lock-queue guard cancelled (attempts.tries). */
  lockCancels: { task: string; count: number }[];
  /** Finished attempts with a duration, by task and status: cumulative bucket counts (DURATION_BUCKETS_SECONDS). */
  durations: { task: string; status: string; buckets: number[]; count: number; sumSeconds: number }[];
  /** The newest release run from tasks files, as a whole; null when none was (or the ledger predates plans). */
  phase?: ReleasePhase | null | undefined;
}

// ------------------------------------------------------------------------------------------ format

/** Label values: backslash, double quote and newline are escaped (text format 0.0.4). */
const labelValue = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const helpText = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function labels(pairs: Record<string, string>): string {
  const entries = Object.entries(pairs);
  if (entries.length === 0) return "";
  return `{${entries.map(([name, value]) => `${name}="${labelValue(value)}"`).join(",")}}`;
}

/** A number as the text format writes it (Go's strconv: +Inf, -Inf, NaN). */
function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

type Sample = [labels: Record<string, string>, value: number, suffix?: string];

function family(
  name: string,
  type: "gauge" | "counter" | "histogram",
  help: string,
  samples: Sample[],
): string {
  const lines = [`# HELP ${name} ${helpText(help)}`, `# TYPE ${name} ${type}`];
  for (const [pairs, value, suffix = ""] of samples)
    lines.push(`${name}${suffix}${labels(pairs)} ${number(value)}`);
  return lines.join("\n");
}

const PREFIX = "release_orchestrator";

/**
 * The attempts of every task the snapshot names, in every status (ATTEMPT_STATUSES, and any other it
 * holds), 0 where it has no count: a series exists before its first occurrence, so that an alert on its
 * increase (`delta(...{status="failed"}[1h]) > 0`) fires on a task's first failure too.
 */
function attemptGrid(snapshot: MetricsSnapshot): MetricsSnapshot["attempts"] {
  const tasks = new Set<string>();
  for (const list of [
    snapshot.attempts,
    snapshot.lastSuccess,
    snapshot.leases,
    snapshot.waiters,
    snapshot.durations,
  ])
    for (const { task } of list) tasks.add(task);
  const statuses = new Set<string>(ATTEMPT_STATUSES);
  for (const { status } of snapshot.attempts) statuses.add(status);
  const counts = new Map(snapshot.attempts.map((a) => [`${a.task}\0${a.status}`, a.count]));
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...tasks].sort(byName).flatMap((task) =>
    [...statuses].sort(byName).map((status) => ({
      task,
      status,
      count: counts.get(`${task}\0${status}`) ?? 0,
    })),
  );
}

/**
 * The newest release run from tasks files: one info sample (its id and state), and its tasks' runs by
 * state (one run per app for an `app` task), every state of every task present, 0 where none is.
 */
function phaseFamilies(phase: ReleasePhase | null | undefined): string[] {
  const runs: Sample[] = [];
  for (const task of phase?.tasks ?? []) {
    if (task.state === "unrecorded") continue;
    for (const state of RUN_STATES)
      runs.push([
        { task: task.name, scope: task.scope, state },
        task.runs.filter((r) => r.state === state).length,
      ]);
  }
  return [
    family(
      `${PREFIX}_release_info`,
      "gauge",
      "1 for the newest release run from a tasks file, labelled with its id and its state as a whole (succeeded, running, failed, pending).",
      phase === null || phase === undefined ? [] : [[{ release: phase.releaseId, state: phase.state }, 1]],
    ),
    family(
      `${PREFIX}_release_task_runs`,
      "gauge",
      "Runs of each task of the newest release run from a tasks file, by scope and state (succeeded, running, failed, pending): one run for a release task, one per app for an app task; every-process tasks are not in the ledger.",
      runs,
    ),
  ];
}

/** The whole /metrics body, ending with a newline. */
export function formatMetrics(snapshot: MetricsSnapshot): string {
  const histogram: Sample[] = [];
  for (const d of snapshot.durations) {
    const base = { task: d.task, status: d.status };
    DURATION_BUCKETS_SECONDS.forEach((le, i) =>
      histogram.push([{ ...base, le: String(le) }, d.buckets[i] ?? 0, "_bucket"]),
    );
    histogram.push([{ ...base, le: "+Inf" }, d.count, "_bucket"]);
    histogram.push([base, d.sumSeconds, "_sum"]);
    histogram.push([base, d.count, "_count"]);
  }
  const families = [
    family(
      `${PREFIX}_attempts`,
      "gauge",
      "Attempts recorded in the ledger, by task and status (running, succeeded, failed, interrupted, lost, abandoned, duplicate); 0 for a status that has not occurred.",
      attemptGrid(snapshot).map((a) => [{ task: a.task, status: a.status }, a.count]),
    ),
    family(
      `${PREFIX}_last_success_timestamp_seconds`,
      "gauge",
      "When the latest successful attempt of each task finished, in seconds since the Unix epoch.",
      snapshot.lastSuccess.map((s) => [{ task: s.task }, s.seconds]),
    ),
    family(
      `${PREFIX}_lock_held`,
      "gauge",
      "1 while a session holds the release advisory lock, 0 otherwise.",
      [[{ lock: snapshot.lockName }, snapshot.lockHeld ? 1 : 0]],
    ),
    family(
      `${PREFIX}_lease_held`,
      "gauge",
      "Running attempts of each task whose lease has not run out (last heartbeat plus lease): 1 while a leader owns the task.",
      snapshot.leases.map((l) => [{ task: l.task }, l.held]),
    ),
    family(
      `${PREFIX}_waiters`,
      "gauge",
      "Processes waiting now for an attempt's outcome, by task (a waiter that stopped its heartbeat is gone, not counted).",
      snapshot.waiters.map((w) => [{ task: w.task }, w.count]),
    ),
    family(
      `${PREFIX}_lock_cancels_total`,
      "counter",
      "Statements of each task's commands that the lock-queue guard cancelled because the app's queries queued behind them (each one a try of an attempt).",
      snapshot.lockCancels.map((c) => [{ task: c.task }, c.count]),
    ),
    family(
      `${PREFIX}_attempt_duration_seconds`,
      "histogram",
      "How long finished attempts ran, by task and status.",
      histogram,
    ),
    ...phaseFamilies(snapshot.phase),
  ];
  return `${families.join("\n")}\n`;
}
