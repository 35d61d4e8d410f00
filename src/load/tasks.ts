// Reads the release tasks file named by --tasks-file (default release-tasks.yml, read if it exists):
// parsed and checked all at once (core/tasks-file.ts), every problem a line of one UsageError (64).

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command, Config } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import { parseTasksFile, type TaskRun } from "../core/tasks-file.js";
import type { Role } from "../core/options.js";

/** A task of the tasks file, as the runner needs it (made from the parsed file). */
export interface TaskPlan {
  name: string;
  scope: "release" | "app" | "every";
  command: Command;
  /** The roles that run it; all when absent (a follower still waits for a `release` task). */
  roles?: readonly Role[] | undefined;
  /** The task's own --wait-timeout (release, app), or how long it may run (every). */
  timeoutMs?: number | undefined;
  /** A post-deploy `release` task: the apps the last of which runs it (run/post-deploy.ts); empty otherwise. */
  after?: readonly string[] | undefined;
}

function commandOf(run: TaskRun): Command {
  if ("shell" in run) return { kind: "shell", script: run.shell };
  const [file = "", ...args] = run.argv;
  return { kind: "argv", file, args };
}

/** The tasks of the file, or undefined when there is none at the default name. */
export function readTasksFile(config: Config, cwd: string): TaskPlan[] | undefined {
  const path = resolve(cwd, config.tasksFile);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && config.tasksFileSource === "default") return undefined;
    throw new UsageError(
      `Cannot read the tasks file ${path} (from ${config.tasksFileSource}): ${code === "ENOENT" ? "it does not exist" : (error as Error).message}.`,
    );
  }
  const parsed = parseTasksFile(text, config.tasksFile);
  if (!parsed.ok) throw new UsageError(parsed.errors);
  return parsed.tasks.map((task) => ({
    name: task.name,
    scope: task.scope,
    command: commandOf(task.run),
    roles: task.roles,
    timeoutMs: task.timeoutMs,
    after: task.after,
  }));
}
