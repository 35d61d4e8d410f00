// Leading: run the command of a claimed attempt under ownership, forward signals, stop it if ownership
// is lost, and record an outcome that always agrees with this process's exit code.

import { startCommand, type CommandResult } from "./command.js";
import type { Command } from "../core/config.js";
import { formatDuration } from "../core/duration.js";
import { ExitCode } from "../core/exit-codes.js";
import { attemptApplicationName, type AttemptOutcome } from "../db/ledger/attempts.js";
import { exitCodeForSignal, fields, result, type RunContext, type RunResult } from "./context.js";
import { notifyOutcome, type NotifyEvent, type NotifyStatus } from "./notify.js";
import type { Link } from "./link.js";
import { withOwnership } from "./ownership.js";

/** Read afresh: the signal may have been aborted while the command was being started. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function describeExit(run: CommandResult): string {
  return run.signal === null ? `exited with code ${run.exitCode}` : `was killed by ${run.signal}`;
}

/**
 * The rule that keeps the exit code and the ledger in agreement: the command's own exit decides.
 * Exit 0 is "succeeded" and exit 0, even after a forwarded signal (the command handled it and
 * finished its work); a command that ends otherwise after a forwarded signal is "interrupted" (130 or
 * 143); any other end is "failed" with its code passed through.
 */
export function outcomeOf(
  run: CommandResult,
  interruptedBy: string | undefined,
): { status: AttemptOutcome["status"]; exitCode: number } {
  if (run.exitCode === 0) return { status: "succeeded", exitCode: ExitCode.ok };
  if (interruptedBy !== undefined)
    return { status: "interrupted", exitCode: exitCodeForSignal(interruptedBy) };
  return { status: "failed", exitCode: run.exitCode };
}

export async function lead(
  ctx: RunContext,
  link: Link,
  attempt: { id: number; command: Command; commandText: string; leaseMs: number },
): Promise<RunResult> {
  const { config, reporter } = ctx;
  const attemptId = attempt.id;
  /** What ended, for RELEASE_NOTIFY_URL: sent once the ledger row is final and the lock is released. */
  let ended: NotifyEvent | undefined;
  const end = (status: NotifyStatus, run: CommandResult | undefined, durationMs: number, outputTail = "") => {
    ended = {
      kind: "attempt-finished",
      releaseId: ctx.release?.id,
      task: config.task,
      app: ctx.app,
      role: config.role,
      status,
      exitCode: run === undefined || run.signal !== null ? null : run.exitCode,
      signal: run?.signal ?? null,
      durationMs,
      attemptId,
      host: ctx.host,
      outputTail,
    };
  };
  const outcome = await withOwnership(ctx, link, attemptId, attempt.leaseMs, async (ownership) => {
    if (ctx.signal?.aborted === true) {
      const code = exitCodeForSignal(ctx.signal.reason);
      await ownership.finish({ status: "interrupted", exitCode: null, signal: null, outputTail: "" });
      end("interrupted", undefined, 0);
      reporter.info(
        `interrupted by ${String(ctx.signal.reason)} before the command started; nothing was run.`,
        fields(ctx, "interrupted", attemptId, { exitCode: code }),
      );
      return result(ctx, "interrupted", code, attemptId);
    }
    reporter.info(
      `${config.role}; running ${config.task} for ${ctx.label} (attempt #${attemptId}): ${attempt.commandText}`,
      fields(ctx, "running", attemptId, { command: attempt.commandText, lockHeld: ownership.lockHeld }),
    );
    const env: Record<string, string | undefined> = {
      ...ctx.env,
      RELEASE_ORCHESTRATOR_ATTEMPT_ID: String(attemptId),
      PGAPPNAME: ctx.env.PGAPPNAME ?? attemptApplicationName(attemptId),
    };
    const started = await startCommand(attempt.command, { env, cwd: ctx.cwd, graceMs: config.killGraceMs });
    const startedMs = Date.now();

    let stopping: Promise<CommandResult> | undefined;
    const stop = (signal: NodeJS.Signals) => {
      stopping ??= started.stop(signal, config.killGraceMs);
    };
    const onLost = () => {
      reporter.error(`ownership was lost: ${String(ownership.lost.reason)}; stopping the command.`);
      stop("SIGTERM");
    };
    ownership.lost.addEventListener("abort", onLost, { once: true });
    let interruptedBy: string | undefined;
    const onAbort = () => {
      interruptedBy = String(ctx.signal?.reason ?? "SIGTERM");
      reporter.info(`received ${interruptedBy}; forwarding it to the command.`);
      started.signal(interruptedBy as NodeJS.Signals);
      setTimeout(() => stop("SIGKILL"), config.killGraceMs).unref();
    };
    // A signal that came while the command was being started is forwarded now.
    if (isAborted(ctx.signal)) onAbort();
    else ctx.signal?.addEventListener("abort", onAbort, { once: true });

    const run = await started.result;
    ctx.signal?.removeEventListener("abort", onAbort);
    ownership.lost.removeEventListener("abort", onLost);
    if (stopping !== undefined) await stopping;
    const durationMs = Date.now() - startedMs;
    const outputTail = reporter.redact(run.outputTail);
    const exit = { exitCode: run.signal === null ? run.exitCode : null, signal: run.signal, outputTail };

    if (ownership.lost.aborted) {
      await ownership.finish({ status: "lost", ...exit });
      end("lost", run, durationMs, outputTail);
      reporter.error(
        `the command was stopped because ownership was lost (attempt #${attemptId}, the command ${describeExit(run)}); check the database connection and retry the release.`,
        fields(ctx, "lock-lost", attemptId, { exitCode: ExitCode.lockLost }),
      );
      return result(ctx, "lock-lost", ExitCode.lockLost, attemptId);
    }

    const { status, exitCode } = outcomeOf(run, interruptedBy);
    const recorded = await ownership.finish({ status, ...exit });
    end(recorded === "recorded" ? status : "lost", run, durationMs, outputTail);
    if (recorded !== "recorded") {
      reporter.error(
        recorded === "not-ours"
          ? `the command ${describeExit(run)}, but attempt #${attemptId} was no longer ours to record (its lease had been taken over); check the ledger with release-orchestrator history before retrying.`
          : `the command ${describeExit(run)}, but its outcome could not be recorded because the database connection was lost; check the ledger before retrying.`,
        fields(ctx, "lock-lost", attemptId, { exitCode: ExitCode.lockLost, commandExitCode: run.exitCode }),
      );
      return result(ctx, "lock-lost", ExitCode.lockLost, attemptId);
    }
    if (status === "interrupted") {
      reporter.info(
        `the command ended after ${interruptedBy} (${describeExit(run)}); attempt #${attemptId} recorded as interrupted.`,
        fields(ctx, "interrupted", attemptId, { exitCode, status }),
      );
      return result(ctx, "interrupted", exitCode, attemptId);
    }
    if (status === "succeeded") {
      reporter.info(
        `${config.task} succeeded for ${ctx.label} in ${formatDuration(durationMs)} (attempt #${attemptId})${interruptedBy === undefined ? "" : `; the command handled ${interruptedBy} and exited 0`}.`,
        fields(ctx, "ran", attemptId, { exitCode: 0, durationMs }),
      );
      return result(ctx, "ran", ExitCode.ok, attemptId);
    }
    reporter.error(
      `${config.task} failed for ${ctx.label}: the command ${describeExit(run)} (attempt #${attemptId}).`,
      fields(ctx, "command-failed", attemptId, { exitCode, signal: run.signal, durationMs }),
    );
    return result(ctx, "command-failed", exitCode, attemptId);
  });
  // An interrupted release has little time left (Heroku gives 30 s after SIGTERM): notify briefly.
  if (ended !== undefined)
    await notifyOutcome(config, ended, reporter, ended.status === "interrupted" ? { budgetMs: 3000 } : {});
  return outcome;
}
