// Waiting on an observable state (a ledger row, a pg_stat_activity row, an output line) instead of a
// fixed sleep: each wait has a bound, and says what it waited for when the bound is reached.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResultPromise } from "execa";
import type { TestDatabase } from "../harness/database.js";

const POLL_MS = 50;

/** Polls `probe` until it gives a value (not undefined); throws "timed out ... waiting for <what>". */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Resolves when the process has written a line matching `pattern` to `stream` (counting from when this
 * was called: call it right after starting the process); rejects if it exits first or after the bound.
 */
export function waitForOutput(
  child: ResultPromise,
  stream: "stdout" | "stderr",
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(
      () => reject(new Error(`no ${String(pattern)} on ${stream} within ${timeoutMs} ms:\n${seen}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer | string) => {
      seen += chunk.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child[stream]?.off("data", onData);
        resolve();
      }
    };
    child[stream]?.on("data", onData);
    child.then(
      () => {
        clearTimeout(timer);
        if (!pattern.test(seen))
          reject(new Error(`exited before ${String(pattern)} appeared on ${stream}:\n${seen}`));
      },
      () => undefined,
    );
  });
}

/** waitForOutput on stderr, where the orchestrator's own lines go. */
export function waitForStderr(child: ResultPromise, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  return waitForOutput(child, "stderr", pattern, timeoutMs);
}

/** What a waiting process prints at once (its progress line): "<role>; waiting for <holder> to finish ...". */
export const WAITING = /; waiting for /;

/**
 * Until the ledger records a running attempt for the release. Its leader wrote the row and is starting
 * the command (through its supervisor): a test that needs the command itself at work waits for its output.
 */
export function waitForRunningAttempt(
  db: TestDatabase,
  releaseId: string,
  schema = "release_orchestrator",
): Promise<true> {
  return waitFor(`a running attempt for release ${releaseId} in the ledger`, async () => {
    const rows = await db
      .query(`SELECT 1 FROM ${schema}.attempts WHERE release_id = $1 AND status = 'running'`, [releaseId])
      .catch(() => []);
    return rows.length > 0 ? true : undefined;
  });
}

/**
 * A leader's command that "migrates" until the test opens its gate (it polls for a file), instead of
 * for a fixed time: what the test looks at while it runs is there however slow the machine is.
 */
export function gate(): { command: string[]; open(): void } {
  const file = join(mkdtempSync(join(tmpdir(), "ro-gate-")), "open");
  return {
    command: ["sh", "-c", 'until [ -e "$1" ]; do sleep 0.05; done; echo gate opened', "gate", file],
    open: () => writeFileSync(file, ""),
  };
}
