// runRelease for programs that embed release-orchestrator: the same run as the CLI's, with the
// command's supervisor started from this package's own CLI (dist/cli.js beside this file).

import { fileURLToPath } from "node:url";
import { runRelease as run, type RunInput as FullInput } from "./run/runbook.js";

export type { RunResult, RunOutcome } from "./run/runbook.js";

/** What runRelease takes; `supervisor` defaults to this package's CLI run by the current node. */
export type RunInput = Omit<FullInput, "supervisor"> & Partial<Pick<FullInput, "supervisor">>;

export function runRelease(input: RunInput): ReturnType<typeof run> {
  const supervisor = input.supervisor ?? {
    file: process.execPath,
    args: [fileURLToPath(new URL("./cli.js", import.meta.url))],
  };
  return run({ ...input, supervisor });
}
