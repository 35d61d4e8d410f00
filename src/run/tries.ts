// The tries of a lead's command under the lock-queue guard: run it with the guard watching; when the
// guard cancelled one of its statements and it stopped on the error, wait (the lease kept, followers
// still waiting) and run it again, up to --lock-retries tries and never past --wait-timeout.

import { setTimeout as sleep } from "node:timers/promises";
import { describeBlockedOut, type LockTry } from "../core/lock-guard.js";
import { formatDuration } from "../core/duration.js";
import type { Claim } from "./claim.js";
import type { CommandResult } from "./command.js";
import { fields, type RunContext } from "./context.js";
import { LockGuard, type GuardReport } from "./guard.js";
import type { Link } from "./link.js";

export interface Once {
  run: CommandResult;
  interruptedBy: string | undefined;
}

export interface Tried extends Once {
  /** Every cancel the guard made, over all tries. */
  tries: LockTry[];
  /** Set when the tries ran out: the sentence naming the last blocker. */
  blockedOut: string | undefined;
}

/** Runs the command (`once`) as many times as the guard's cancels call for; see the file's header. */
export async function runTries(
  ctx: RunContext,
  claim: Claim,
  link: Link,
  once: (tryNo: number) => Promise<Once>,
): Promise<Tried> {
  const { config, reporter } = ctx;
  const tries: LockTry[] = [];
  for (let tryNo = 1; ; tryNo++) {
    const guard =
      config.lockWaitMs === null ? undefined : new LockGuard(ctx, link, claim.id, tryNo, config.lockWaitMs);
    let ran: Once;
    let next: GuardReport["next"];
    try {
      ran = await once(tryNo);
    } finally {
      const report = await guard?.stop();
      tries.push(...(report?.cancels ?? []));
      next = report?.next;
    }
    const { run } = ran;
    const done = { ...ran, tries, blockedOut: undefined };
    // Nothing of this try was cancelled, or something else ended it: its end is the lead's.
    if (
      next === undefined ||
      ran.interruptedBy !== undefined ||
      claim.lost.aborted ||
      run.stoppedBy !== undefined
    )
      return done;
    if (run.exitCode === 0 && run.signal === null) {
      reporter.warn(
        "lock guard: the command exited 0 although one of its statements was cancelled; it may have gone on without it (psql without ON_ERROR_STOP does). Check the schema.",
        fields(ctx, "lock-cancel-ignored", claim.id),
      );
      return done;
    }
    const last = tries[tries.length - 1] as LockTry;
    if (!next.retry) return { ...done, blockedOut: describeBlockedOut(last, next.why) };
    reporter.info(
      `lock guard: try ${tryNo} of ${config.lockTries} ended (exit code ${run.exitCode}) after the cancel; the lease is kept and the command runs again in ${formatDuration(next.waitMs)}.`,
      fields(ctx, "lock-retry", claim.id, { try: tryNo + 1, inMs: next.waitMs }),
    );
    const paused = await pause(next.waitMs, claim.lost, ctx.signal);
    if (paused === "signal") return { ...done, interruptedBy: String(ctx.signal?.reason ?? "SIGTERM") };
    // Ownership was lost while nothing ran: the lead ends as lost (77), the command was not running.
    if (paused === "lost") return { ...done, run: { ...run, byItself: false } };
  }
}

/** Waits between tries; ends early when ownership is lost or the run is interrupted. */
async function pause(
  ms: number,
  lost: AbortSignal,
  signal: AbortSignal | undefined,
): Promise<"done" | "lost" | "signal"> {
  const either = AbortSignal.any(signal === undefined ? [lost] : [lost, signal]);
  await sleep(ms, undefined, { signal: either }).catch(() => {});
  if (signal?.aborted === true) return "signal";
  return lost.aborted ? "lost" : "done";
}
