// The release as a whole: every task a release's tasks files list (the plans each app recorded), with
// its scope, who ran it (per app for an `app` task), its outcome, and what is still pending. Pure: the
// plans and the release's attempts go in (arrivals before a post-deploy task included), the phase
// comes out; status, history, the page, /metrics and the notification all show this one shape.

import { formatDuration } from "./duration.js";
import type { Attempt } from "./records.js";

/** A task as a plan records it: what the view needs of a tasks file's task. */
export interface PlannedTask {
  name: string;
  scope: "release" | "app" | "every";
  /** A post-deploy task: the apps the last of which runs it; absent otherwise. */
  after?: string[] | undefined;
}

/** One row of `plans`: the tasks one app's tasks file listed for a release, in order. */
export interface PlanRecord {
  releaseId: string;
  app: string;
  tasks: PlannedTask[];
  host: string;
  pid: number;
  /** When the app's last run recorded it (ISO 8601, UTC). */
  recordedAt: string;
}

/** How one run of a task stands: pending until an attempt exists. */
export type RunState = "succeeded" | "running" | "failed" | "pending";
export const RUN_STATES: readonly RunState[] = ["succeeded", "running", "failed", "pending"];

/** The attempt that decides a run's state, as the views show it. */
export type DecidingAttempt = Pick<
  Attempt,
  "id" | "app" | "host" | "pid" | "status" | "exitCode" | "signal" | "startedAt" | "finishedAt" | "durationMs"
>;

/** One run of a task: the release's one run of a `release` task, or one app's run of an `app` task. */
export interface TaskRun {
  /** The app an `app` task runs for; null for a `release` task (once across every app). */
  forApp: string | null;
  state: RunState;
  /** The success, else the running attempt, else the last that ended; null while pending. */
  attempt: DecidingAttempt | null;
  /** Attempts that ended without success (failed, lost, interrupted, abandoned). */
  failures: number;
}

export interface PhaseTask {
  name: string;
  scope: PlannedTask["scope"];
  /** A post-deploy task's apps; empty otherwise. */
  after: string[];
  /** One for a `release` task, one per app that lists an `app` task, none for an `every` task. */
  runs: TaskRun[];
  /** `unrecorded`: an `every` task runs in every process, outside the ledger. */
  state: RunState | "unrecorded";
  /** A post-deploy task not run yet: the named apps that have not finished the tasks before it. */
  waitsFor: string[];
  /** The line status and history print: "assets (app): s-web succeeded (#4, 1.2 s), s-admin pending." */
  text: string;
}

export interface ReleasePhase {
  releaseId: string;
  /** The apps that recorded a plan, in the order they first did. */
  apps: string[];
  /** failed when a run failed and has not succeeded since; else running, else pending, else succeeded. */
  state: RunState;
  tasks: PhaseTask[];
  /** What is still to happen, one sentence each ("assets for s-worker", "contract: waits for s-admin"). */
  pending: string[];
  /** When the first plan was recorded. */
  startedAt: string;
}

/** The ledger's task name of an `app`-scope task (run/tasks.ts writes it): one per app. */
export function appTaskName(task: string, app: string): string {
  return `${task}@${app}`;
}

/** The ledger's task name of an app's arrival before a post-deploy task (db/ledger/arrivals.ts writes it). */
export function arrivalTask(task: string, app: string): string {
  return `${task}:arrived@${app}`;
}

const ENDED_WITHOUT_SUCCESS = new Set(["failed", "lost", "interrupted", "abandoned"]);

/** One run's state from the attempts of its ledger task (any order). */
export function runOf(forApp: string | null, attempts: readonly Attempt[]): TaskRun {
  const newest = [...attempts].sort((a, b) => b.id - a.id);
  const failures = newest.filter((a) => ENDED_WITHOUT_SUCCESS.has(a.status)).length;
  const succeeded = newest.find((a) => a.status === "succeeded");
  const running = newest.find((a) => a.status === "running");
  const last = newest.find((a) => ENDED_WITHOUT_SUCCESS.has(a.status));
  const deciding = succeeded ?? running ?? last;
  const state: RunState = succeeded ? "succeeded" : running ? "running" : last ? "failed" : "pending";
  return { forApp, state, attempt: deciding === undefined ? null : decidingOf(deciding), failures };
}

function decidingOf(a: Attempt): DecidingAttempt {
  const { id, app, host, pid, status, exitCode, signal, startedAt, finishedAt, durationMs } = a;
  return { id, app, host, pid, status, exitCode, signal, startedAt, finishedAt, durationMs };
}

/** "succeeded by s-web (#4, 1.2 s)", "running by s-web (#4)", "failed (#4 lost, exit 77)", "pending". */
function describeRun(run: TaskRun, withApp: boolean): string {
  const a = run.attempt;
  if (a === null) return "pending";
  const by = withApp ? ` by ${a.app}` : "";
  if (run.state === "succeeded")
    return `succeeded${by} (#${a.id}${a.durationMs === null ? "" : `, ${formatDuration(a.durationMs)}`})`;
  if (run.state === "running") return `running${by} (#${a.id})`;
  const code = a.exitCode === null ? (a.signal ?? "no exit code") : `exit ${a.exitCode}`;
  return `${a.status}${by} (#${a.id}, ${code}${run.failures > 1 ? `, ${run.failures} attempts` : ""})`;
}

/** The tasks of every plan, each once, in the order the earliest plans list them. */
function mergedTasks(plans: readonly PlanRecord[]): PlannedTask[] {
  const seen = new Map<string, PlannedTask>();
  for (const plan of plans)
    for (const task of plan.tasks) if (!seen.has(task.name)) seen.set(task.name, task);
  return [...seen.values()];
}

function stateOf(states: readonly RunState[]): RunState {
  for (const state of ["failed", "running", "pending"] as const) if (states.includes(state)) return state;
  return "succeeded";
}

/** The release as a whole, from its plans and every attempt recorded for its release id. */
export function buildPhase(plans: readonly PlanRecord[], attempts: readonly Attempt[]): ReleasePhase {
  const ordered = [...plans].sort((a, b) => a.recordedAt.localeCompare(b.recordedAt));
  const releaseId = ordered[0]?.releaseId ?? "";
  const apps = ordered.map((p) => p.app);
  const byTask = new Map<string, Attempt[]>();
  for (const a of attempts) byTask.set(a.task, [...(byTask.get(a.task) ?? []), a]);
  const of = (ledgerTask: string) => byTask.get(ledgerTask) ?? [];
  const pending: string[] = [];
  const tasks = mergedTasks(ordered).map((task): PhaseTask => {
    const after = task.after ?? [];
    const head = `${task.name} (${task.scope}${after.length > 0 ? `, after ${after.join(", ")}` : ""})`;
    if (task.scope === "every")
      return {
        name: task.name,
        scope: task.scope,
        after,
        runs: [],
        state: "unrecorded",
        waitsFor: [],
        text: `${head}: runs in every process, not recorded in the ledger.`,
      };
    if (task.scope === "app") {
      const listing = ordered.filter((p) => p.tasks.some((t) => t.name === task.name && t.scope === "app"));
      const runs = listing.map((p) => runOf(p.app, of(appTaskName(task.name, p.app))));
      for (const run of runs)
        if (run.state !== "succeeded") pending.push(`${task.name} for ${run.forApp ?? ""} (${run.state})`);
      const each = runs.map((run) => `${run.forApp ?? ""} ${describeRun(run, false)}`).join(", ");
      return {
        name: task.name,
        scope: task.scope,
        after,
        runs,
        state: stateOf(runs.map((r) => r.state)),
        waitsFor: [],
        text: `${head}: ${each}.`,
      };
    }
    const run = runOf(null, of(task.name));
    const arrived = new Set(after.filter((app) => of(arrivalTask(task.name, app)).length > 0));
    const waitsFor = run.state === "pending" ? after.filter((app) => !arrived.has(app)) : [];
    const says = waitsFor.length > 0 ? `waits for ${waitsFor.join(", ")}` : describeRun(run, true);
    if (run.state !== "succeeded") pending.push(`${task.name}: ${says}`);
    return {
      name: task.name,
      scope: task.scope,
      after,
      runs: [run],
      state: run.state,
      waitsFor,
      text: `${head}: ${says}.`,
    };
  });
  const states = tasks.flatMap((t) => (t.state === "unrecorded" ? [] : [t.state]));
  return { releaseId, apps, state: stateOf(states), tasks, pending, startedAt: ordered[0]?.recordedAt ?? "" };
}

/** The phase as lines: a heading, then one line per task (status and history print these). */
export function describePhase(phase: ReleasePhase): string[] {
  const apps = `${phase.apps.length === 1 ? "1 app" : `${phase.apps.length} apps`}: ${phase.apps.join(", ")}`;
  return [
    `Release ${phase.releaseId} as a whole (${apps}): ${phase.state}${phase.pending.length > 0 ? `; pending: ${phase.pending.join("; ")}` : ""}.`,
    ...phase.tasks.map((t) => `  ${t.text}`),
  ];
}
