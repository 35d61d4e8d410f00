// `wait`: the gate of an app process that must not start before the release's tasks are done (a
// Kubernetes app container's init container, a service that boots on its own, a CI deploy gate). It
// runs no command: for each task in turn it is a waiting follower (runbook.ts), under one deadline.

import type { RunResult } from "../core/endings.js";
import { readTasksFile } from "../load/tasks.js";
import { runRelease, type RunInput } from "./runbook.js";
import { isPostDeploy } from "./tasks.js";

/**
 * Waits until every task in `tasks` has succeeded for this release: 0; the first that failed gives 76,
 * a deadline (--wait-timeout, over all the tasks together) 75. A release that has not started yet is
 * waited for.
 */
export async function waitForTasks(
  input: RunInput,
  named: readonly string[] | undefined,
): Promise<RunResult> {
  // None named: the tasks file's release tasks, else the one task (--task, default migrate).
  const tasks = named ?? releaseTasks(input) ?? [input.config.task];
  const deadline = Date.now() + input.config.waitTimeoutMs;
  let last: RunResult | undefined;
  for (const task of tasks) {
    const config = {
      ...input.config,
      task,
      role: "follower" as const,
      followerMode: "wait" as const,
      command: undefined,
      waitTimeoutMs: Math.max(1, deadline - Date.now()),
    };
    input.reporter.setContext({ role: "follower", task });
    last = await runRelease({ ...input, config });
    if (last.exitCode !== 0) return last;
  }
  if (last === undefined) throw new Error("wait needs at least one task");
  return last;
}

/** The tasks file's `release`-scope tasks (what every app waits on), if there is a file. */
function releaseTasks(input: RunInput): string[] | undefined {
  // Not the post-deploy ones: they run once every app has deployed, so a gate on them would never open.
  const tasks = readTasksFile(input.config, input.cwd)?.filter(
    (task) => task.scope === "release" && !isPostDeploy(task),
  );
  return tasks === undefined || tasks.length === 0 ? undefined : tasks.map((task) => task.name);
}
