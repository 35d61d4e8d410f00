// The release tasks of a tasks file (release-tasks.yml), in order: each under its scope's ownership,
// with every guarantee of a single `run` per task (runbook.ts): `release` once per release across
// every app, `app` once per release for each app (its replicas share it), `every` in every process.
// A process starts a task only after the ones before it succeeded for it; the first failure stops
// it with that task's code, and a retry resumes at the first task not done (the ledger says which).

import { hostname } from "node:os";
import type { Config } from "../core/config.js";
import type { Role } from "../core/options.js";
import { describeExit, exitCodeForSignal, type RunResult } from "../core/endings.js";
import { appTaskName } from "../core/release-phase.js";
import { readTasksFile, type TaskPlan as ReleaseTask } from "../load/tasks.js";
import { recordPlan } from "../db/ledger/plans.js";
import { resolveReleaseId } from "../load/release-id.js";
import { checkCommand, describeCommand, startCommand } from "./command.js";
import { withLedger } from "./ledger-client.js";
import { runPostDeploy } from "./post-deploy.js";
import { runRelease, type RunInput } from "./runbook.js";

/** A `release` task with `after:`: run once every named app has finished the tasks before it. */
export function isPostDeploy(task: ReleaseTask): boolean {
  return (task.after ?? []).length > 0;
}

/** `run`: the command after -- (or RELEASE_COMMAND) as one task; with neither, the tasks file's tasks. */
export async function runReleasePhase(input: RunInput): Promise<RunResult> {
  const tasks = input.config.command === undefined ? readTasksFile(input.config, input.cwd) : undefined;
  if (tasks === undefined) return runRelease(input);
  // Every command this process would start can start, before anything is recorded.
  for (const task of tasks) {
    const role = roleFor(task, input.config);
    if (role !== "none" && role !== "follower") checkCommand(task.command, input.env, input.cwd);
  }
  return runTasks(input, tasks);
}

/** Runs the tasks in order; see the file's header. */
export async function runTasks(input: RunInput, tasks: readonly ReleaseTask[]): Promise<RunResult> {
  const { reporter } = input;
  const app = input.config.app ?? hostname();
  await recordPlanOf(input, tasks, app);
  let last: RunResult | undefined;
  for (const [index, task] of tasks.entries()) {
    reporter.setContext({ task: task.name });
    reporter.info(`task ${index + 1} of ${tasks.length}: ${task.name} (scope ${task.scope}).`, {
      event: "task",
      task: task.name,
      scope: task.scope,
    });
    const result = await runTask(input, task, app);
    if (result.exitCode !== 0) {
      const rest = tasks.slice(index + 1).map((t) => t.name);
      if (rest.length > 0)
        reporter.error(
          `${task.name} ended with exit code ${result.exitCode}: ${rest.join(", ")} did not run; a retry of the release resumes at the first task not yet done.`,
          { event: "tasks-stopped", task: task.name, exitCode: result.exitCode },
        );
      return result;
    }
    last = result;
  }
  if (last === undefined) throw new Error("a tasks file has at least one task");
  return last;
}

/** Records the tasks this app's file lists for the release, so that the release shows as a whole. */
async function recordPlanOf(input: RunInput, tasks: readonly ReleaseTask[], app: string): Promise<void> {
  const release = await resolveReleaseId(input.config, input.env, input.cwd);
  if (release === undefined) return; // unversioned: no release to show as a whole (the runbook warns)
  const planned = tasks.map(({ name, scope, after }) => ({ name, scope, after: after?.slice() }));
  await withLedger(input, [app, "plan"], (client, ledger) =>
    recordPlan(client, ledger, {
      releaseId: release.id,
      app,
      tasks: planned,
      host: hostname(),
      pid: process.pid,
    }),
  );
}

/**
 * The role this process has for a task: its own when the task lets it run, else it only waits (a
 * release task) or skips (an app, every or post-deploy task: nobody waits for one).
 */
function roleFor(task: ReleaseTask, config: Config): Role | "none" {
  const allowed = task.roles === undefined || task.roles.includes(config.role);
  if (task.scope === "release" && !isPostDeploy(task)) return allowed ? config.role : "follower";
  if (!allowed) return "none";
  // A follower runs its own app's tasks: it never runs the release's, but these are its own.
  return config.role === "leader" ? "leader" : "auto";
}

async function runTask(input: RunInput, task: ReleaseTask, app: string): Promise<RunResult> {
  const { config, reporter } = input;
  const role = roleFor(task, config);
  if (role === "none") {
    reporter.info(
      `${task.name}: not run by the ${config.role} role (roles: ${(task.roles ?? []).join(", ")}).`,
    );
    return { exitCode: 0, outcome: "skipped", releaseId: config.releaseId, attemptId: undefined };
  }
  if (task.scope === "every") return runEverywhere(input, task);
  if (isPostDeploy(task)) return runPostDeploy(input, task, app);
  const owned: Config = {
    ...config,
    role,
    task: task.scope === "app" ? appTaskName(task.name, app) : task.name,
    command: task.command,
    waitTimeoutMs: task.timeoutMs ?? config.waitTimeoutMs,
  };
  return runRelease({ ...input, config: owned });
}

/** An `every` task: this process runs it, every time, without the ledger (it has no one owner). */
async function runEverywhere(input: RunInput, task: ReleaseTask): Promise<RunResult> {
  const { config, reporter, signal } = input;
  reporter.info(`running ${task.name} in this process: ${describeCommand(task.command)}`, {
    event: "running",
    task: task.name,
  });
  const started = startCommand(task.command, {
    env: input.env,
    cwd: input.cwd,
    graceMs: config.killGraceMs,
    supervisor: input.supervisor,
  });
  const forward = () => started.signal((signal?.reason as NodeJS.Signals | undefined) ?? "SIGTERM");
  signal?.addEventListener("abort", forward, { once: true });
  const timer =
    task.timeoutMs === undefined
      ? undefined
      : setTimeout(() => void started.stop("SIGTERM", config.killGraceMs), task.timeoutMs);
  try {
    const ended = await started.result;
    const interrupted = signal?.aborted === true && ended.exitCode !== 0;
    const exitCode = interrupted ? exitCodeForSignal(signal.reason) : ended.exitCode;
    if (exitCode === 0)
      reporter.info(`${task.name} succeeded in this process.`, { event: "ran", task: task.name });
    else
      reporter.error(`${task.name} failed in this process: the command ${describeExit(ended)}.`, {
        event: "command-failed",
        task: task.name,
        exitCode,
      });
    return {
      exitCode,
      outcome: interrupted ? "interrupted" : exitCode === 0 ? "ran" : "command-failed",
      releaseId: config.releaseId,
      attemptId: undefined,
    };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener("abort", forward);
  }
}
