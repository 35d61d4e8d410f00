// How a run ends, as pure mappings: what a leader records from how its command ended, and what each
// ending means for the user (outcome, exit code, the sentence, the --json event, the notification).
// The exit code and the ledger always agree: the command's own exit decides.

import { formatDuration } from "./duration.js";
import type { EventName } from "./events.js";
import { ExitCode } from "./exit-codes.js";
import type { AttemptStatus } from "./records.js";

export type RunOutcome =
  | "ran" // this process was the leader and the command succeeded
  | "command-failed" // this process was the leader and the command failed; exit code passed through
  | "already-done" // the ledger already showed success for this release
  | "leader-succeeded" // waited, and the leader succeeded
  | "skipped" // follower in skip mode
  | "leader-failed" // waited on an attempt that failed (76)
  | "timeout" // 75
  | "lock-lost" // 77
  | "interrupted"; // 130 / 143

export interface RunResult {
  exitCode: number;
  outcome: RunOutcome;
  releaseId: string | undefined;
  /** The attempt this process ran or waited on. */
  attemptId: number | undefined;
}

/** How the command ended: its exit code (128 + n when killed by signal n) and the signal, if any. */
export interface CommandEnd {
  exitCode: number;
  signal: string | null;
  /** It ended by itself, before any stop or signal reached it (its supervisor says so). */
  byItself?: boolean;
}

/** What a leader writes into its attempt row. */
export type RecordedStatus = Extract<AttemptStatus, "succeeded" | "failed" | "interrupted" | "lost">;

/** Whether the outcome reached the ledger: recorded, refused (the attempt was taken over), or not written. */
export type Recorded = "recorded" | "not-ours" | "unrecorded";

export function exitCodeForSignal(signal: unknown): number {
  return signal === "SIGINT" ? ExitCode.sigint : ExitCode.sigterm;
}

/** How a lead's command went: never started (interrupted first), stopped because ownership was lost, or ended. */
export interface LeadFacts {
  /** Undefined when the command was never started (a signal came first). */
  run: CommandEnd | undefined;
  /** The signal forwarded to the command (or that came before it started), if any. */
  interruptedBy: string | undefined;
  /**
   * Why ownership was lost while the command ran; the command was stopped for it, unless it had ended by
   * itself first (a leader resumed after a pause): then its real outcome is recorded, fenced as ever.
   */
  lostReason: string | undefined;
  /**
   * Set when the lock-queue guard's tries ran out (every try cancelled behind the app's open
   * transaction): the sentence naming the last blocker. The attempt is failed; the leader exits 75.
   */
  blockedOut?: string | undefined;
}

/** Whether the command was stopped because ownership was lost (not: it ended by itself before that). */
function stoppedForLoss(facts: LeadFacts): boolean {
  return facts.lostReason !== undefined && facts.run?.byItself !== true;
}

/**
 * The status to record and the code to exit with. A command that exits 0 succeeded, even after a
 * forwarded signal (it handled it and finished its work, so running it again would be wrong); one that
 * ends otherwise after a forwarded signal is interrupted (130 or 143); a lost lead is lost (77).
 */
export function statusOf(facts: LeadFacts): { status: RecordedStatus; exitCode: number } {
  const { run, interruptedBy } = facts;
  if (run === undefined) return { status: "interrupted", exitCode: exitCodeForSignal(interruptedBy) };
  if (stoppedForLoss(facts)) return { status: "lost", exitCode: ExitCode.lockLost };
  if (run.exitCode === 0) return { status: "succeeded", exitCode: ExitCode.ok };
  if (interruptedBy !== undefined)
    return { status: "interrupted", exitCode: exitCodeForSignal(interruptedBy) };
  if (facts.blockedOut !== undefined) return { status: "failed", exitCode: ExitCode.timeout };
  return { status: "failed", exitCode: run.exitCode };
}

/** What a lead's ending means for the user; `event` and `fields` are its --json event. */
export interface LeadEnding {
  outcome: RunOutcome;
  exitCode: number;
  level: "info" | "error";
  message: string;
  event: EventName;
  fields: Record<string, unknown>;
  /** The status the notification reports (a lead that could not record its outcome reports "lost"). */
  notifyStatus: RecordedStatus;
}

export function describeExit(run: CommandEnd): string {
  return run.signal === null ? `exited with code ${run.exitCode}` : `was killed by ${run.signal}`;
}

function notRecorded(ran: string, attemptId: number, recorded: Exclude<Recorded, "recorded">): string {
  return recorded === "not-ours"
    ? `${ran}, but attempt #${attemptId} was no longer ours to record (its lease had been taken over); check the ledger with release-orchestrator history before retrying.`
    : `${ran}, but its outcome could not be recorded because the database connection was lost; check the ledger before retrying.`;
}

/** The ending of a lead, once its outcome was recorded (or could not be). */
export function leadEnding(
  facts: LeadFacts & {
    recorded: Recorded;
    attemptId: number;
    task: string;
    label: string;
    durationMs: number;
  },
): LeadEnding {
  const { run, interruptedBy, attemptId } = facts;
  const { status, exitCode } = statusOf(facts);
  const end = (
    outcome: RunOutcome,
    level: LeadEnding["level"],
    message: string,
    fields = {},
  ): LeadEnding => ({
    outcome,
    exitCode: outcome === "lock-lost" ? ExitCode.lockLost : exitCode,
    level,
    message,
    event: outcome,
    fields: { exitCode: outcome === "lock-lost" ? ExitCode.lockLost : exitCode, ...fields },
    notifyStatus: outcome === "lock-lost" ? "lost" : status,
  });
  if (run === undefined)
    return end(
      "interrupted",
      "info",
      `interrupted by ${String(interruptedBy)} before the command started; nothing was run.`,
    );
  const ran = `the command ${describeExit(run)}`;
  if (stoppedForLoss(facts))
    return end(
      "lock-lost",
      "error",
      `the command was stopped because ownership was lost (attempt #${attemptId}, ${ran}); check the database connection and retry the release.`,
    );
  if (facts.recorded !== "recorded")
    return end("lock-lost", "error", notRecorded(ran, attemptId, facts.recorded), {
      commandExitCode: run.exitCode,
    });
  const took = formatDuration(facts.durationMs);
  switch (status) {
    case "interrupted":
      return end(
        "interrupted",
        "info",
        `the command ended after ${String(interruptedBy)} (${describeExit(run)}); attempt #${attemptId} recorded as interrupted.`,
        { status },
      );
    case "succeeded":
      return end(
        "ran",
        "info",
        `${facts.task} succeeded for ${facts.label} in ${took} (attempt #${attemptId})${interruptedBy === undefined ? "" : `; the command handled ${interruptedBy} and exited 0`}.`,
        { durationMs: facts.durationMs },
      );
    default:
      if (facts.blockedOut !== undefined)
        return end(
          "timeout",
          "error",
          `${facts.task} failed for ${facts.label} (attempt #${attemptId}, the last try ${describeExit(run)}): ${facts.blockedOut}`,
          { commandExitCode: run.exitCode, reason: "lock-guard" },
        );
      return end(
        "command-failed",
        "error",
        `${facts.task} failed for ${facts.label}: ${ran} (attempt #${attemptId}).`,
        {
          signal: run.signal,
          durationMs: facts.durationMs,
        },
      );
  }
}
