// A post-deploy task (`after: [apps]` in the tasks file): it runs once per release, by whichever of
// those apps is the last to finish the tasks before it. Each named app records its arrival first and
// then looks whether every named app has arrived: of two apps arriving at once, at least one sees the
// other, and the task's own ownership (the runbook) makes sure only one runs it. Apps not named, and
// named apps that find others missing, go on without waiting for it.

import { hostname } from "node:os";
import type { RunResult } from "../core/endings.js";
import { UsageError } from "../core/errors.js";
import { readArrivals, recordArrival } from "../db/ledger/arrivals.js";
import type { TaskPlan } from "../load/tasks.js";
import { resolveReleaseId } from "../load/release-id.js";
import { withLedger } from "./ledger-client.js";
import { runRelease, type RunInput } from "./runbook.js";

export async function runPostDeploy(input: RunInput, task: TaskPlan, app: string): Promise<RunResult> {
  const { config, reporter } = input;
  const after = task.after ?? [];
  const done = (): RunResult => ({
    exitCode: 0,
    outcome: "skipped",
    releaseId: config.releaseId,
    attemptId: undefined,
  });
  if (!after.includes(app)) {
    reporter.info(
      `${task.name}: post-deploy, run by the last of ${after.join(", ")} to finish the tasks before it; not this app's.`,
    );
    return done();
  }
  const release = await resolveReleaseId(config, input.env, input.cwd);
  if (release === undefined)
    throw new UsageError(
      `${task.name} is a post-deploy task (after:): it needs a release id to know when every app has arrived; set RELEASE_ID or stamp a .release-id file.`,
    );
  const arrived = await withLedger(input, [app, "post-deploy", task.name], async (client, ledger) => {
    await recordArrival(client, ledger, {
      releaseId: release.id,
      task: task.name,
      lockName: config.lockName,
      app,
      host: hostname(),
      pid: process.pid,
      role: config.role,
    });
    return readArrivals(client, ledger, release.id, task.name, after);
  });
  const missing = after.filter((name) => !arrived.includes(name));
  if (missing.length > 0) {
    reporter.info(
      `${task.name}: waits for ${missing.join(", ")} (post-deploy: it runs once every one of ${after.join(", ")} has finished the tasks before it); this app goes on.`,
      {
        event: "post-deploy-pending",
        task: task.name,
        missing,
      },
    );
    return done();
  }
  // The last to arrive runs it, whatever its role (a follower too: nobody else would), unless roles: say otherwise.
  const role = config.role === "follower" ? "auto" : config.role;
  return runRelease({
    ...input,
    config: {
      ...config,
      role,
      task: task.name,
      command: task.command,
      waitTimeoutMs: task.timeoutMs ?? config.waitTimeoutMs,
    },
  });
}
