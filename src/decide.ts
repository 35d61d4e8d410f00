// The decision at the heart of the tool, as a pure function:
// role x lock state x ledger state -> what this process does next. No IO; tested exhaustively.

import type { FollowerMode, Role } from "./options.js";

export const ATTEMPT_STATUSES = [
  "running",
  "succeeded",
  "failed",
  "interrupted",
  "lost",
  "abandoned",
] as const;
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];

/** The part of a ledger row the decision needs. */
export interface AttemptView {
  id: number;
  status: AttemptStatus;
  app: string;
  pid: number;
  host: string;
  role: string;
  startedAt: Date;
  finishedAt: Date | null;
  exitCode: number | null;
}

/**
 * held: this process holds the lock. busy: another session holds it. free: nobody holds it
 * (followers only look, they never take it). not-tried: leader/auto have not tried since the last read.
 */
export type LockState = "held" | "busy" | "free" | "not-tried";

export interface Situation {
  role: Role;
  followerMode: FollowerMode;
  /** False when no release id was found: every process runs the command in turn. */
  versioned: boolean;
  lock: LockState;
  /** The attempt that matters for this release and task: a succeeded one if any, else the latest. */
  latest: AttemptView | undefined;
  /**
   * The attempt this process found already finished in its first read of the ledger: an outcome from
   * before it started, which it did not wait on. Every other finished attempt is one it waited on.
   */
  finishedBeforeStart: number | undefined;
  timedOut: boolean;
}

export type Decision =
  | { action: "run"; takeOver: AttemptView | undefined }
  | { action: "done"; reason: "already-succeeded" | "leader-succeeded"; attempt: AttemptView }
  | { action: "skip" }
  | { action: "take-lock" }
  | { action: "wait"; on: AttemptView | undefined }
  | { action: "fail"; reason: "failed" | "stopped" | "abandoned"; attempt: AttemptView }
  | { action: "timeout"; on: AttemptView | undefined };

/** Interrupted, lost or abandoned: the attempt ended without its command deciding the outcome. */
export function isStopped(status: AttemptStatus): boolean {
  return status === "interrupted" || status === "lost" || status === "abandoned";
}

function finishedWhileWaiting(attempt: AttemptView, finishedBeforeStart: number | undefined): boolean {
  return attempt.status !== "running" && attempt.id !== finishedBeforeStart;
}

export function decide(s: Situation): Decision {
  if (s.role === "follower" && s.followerMode === "skip") return { action: "skip" };
  const latest = s.versioned ? s.latest : undefined;

  if (latest?.status === "succeeded") {
    const reason = finishedWhileWaiting(latest, s.finishedBeforeStart)
      ? "leader-succeeded"
      : "already-succeeded";
    return { action: "done", reason, attempt: latest };
  }

  // An attempt that ended while this process was waiting on it: report it, or take over.
  if (latest !== undefined && finishedWhileWaiting(latest, s.finishedBeforeStart)) {
    if (latest.status === "failed" && s.role !== "leader") {
      return { action: "fail", reason: "failed", attempt: latest };
    }
    if (isStopped(latest.status) && s.role === "follower") {
      return { action: "fail", reason: "stopped", attempt: latest };
    }
  }

  if (s.role === "follower") {
    // A running attempt while nobody holds the lock: its leader is gone (it commits its outcome before unlocking).
    if (latest?.status === "running" && s.lock === "free") {
      return { action: "fail", reason: "abandoned", attempt: latest };
    }
    const on = latest?.status === "running" ? latest : undefined;
    return s.timedOut ? { action: "timeout", on } : { action: "wait", on };
  }

  // leader or auto
  if (s.lock === "held") {
    return { action: "run", takeOver: latest?.status === "running" ? latest : undefined };
  }
  const on = latest?.status === "running" ? latest : undefined;
  if (s.timedOut) return { action: "timeout", on };
  if (s.lock === "busy") return { action: "wait", on };
  return { action: "take-lock" };
}
