// What every scenario gets: the workspace, a server, a logger, and a way to start the orchestrator.

import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync, unlinkSync } from "node:fs";
import path from "node:path";
import type { BenchDatabase, BenchServer } from "./database.js";
import { cleanEnv, type Workspace } from "./environment.js";
import { sleep, startProcess, type Proc } from "./processes.js";

export interface BenchContext {
  ws: Workspace;
  server: BenchServer;
  log(line: string): void;
}

/**
 * Starts `node <snapshot of dist/cli.js> <args>` (or, with `binary`, the snapshot of the standalone
 * binary) against `db`, as the application role.
 */
export function startCli(
  ctx: BenchContext,
  db: BenchDatabase,
  args: readonly string[],
  env: Record<string, string> = {},
  binary?: string,
): Proc {
  const [file, leading] = binary === undefined ? [process.execPath, [ctx.ws.cli]] : [binary, []];
  return startProcess(file, [...leading, ...args], {
    cwd: path.join(ctx.ws.dir, "work"),
    env: cleanEnv({ DATABASE_URL: db.appUrl, ...env }),
  });
}

/** The orchestrator's debug line for each decision it takes (printed with --verbose). */
export const DECISION = /debug: decision: (\S+)/;

/** Peak RSS a process reports at its end with --verbose, in MB. */
export function peakRssMb(proc: Proc): number | undefined {
  for (const line of proc.lines) {
    const match = /peak RSS (\d+) MB/.exec(line);
    if (match !== null) return Number(match[1]);
  }
  return undefined;
}

/**
 * A gate for a leader's command: `cat <fifo>` blocks until the bench opens the fifo for writing and
 * closes it, then exits 0. The command costs nothing while it waits and ends exactly when told to.
 */
export class Gate {
  constructor(readonly file: string) {
    execFileSync("mkfifo", [file]);
  }

  async open(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        // Non-blocking: ENXIO until `cat` has the fifo open for reading.
        closeSync(openSync(this.file, constants.O_WRONLY | constants.O_NONBLOCK));
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENXIO" || Date.now() > deadline) throw error;
        await sleep(1);
      }
    }
  }

  remove(): void {
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
  }
}
