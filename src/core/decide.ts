// The decisions at the heart of the tool, as pure functions: role x ledger state -> what this process
// does next, and when a stale owner may be taken over. No IO; tested over their whole space.

import type { FollowerMode, OrphanPolicy, Role } from "./options.js";
import type { Attempt, AttemptStatus, Lease } from "./records.js";

export { ATTEMPT_STATUSES, type AttemptStatus } from "./records.js";

/** What the ledger says of a running attempt's lease (see Lease); the decision needs these parts. */
export type LeaseView = Pick<Lease, "leftMs" | "sessionGone" | "orphans">;

/** The part of an attempt's record the decision needs. */
export type AttemptView = Pick<
  Attempt,
  "id" | "status" | "releaseId" | "app" | "pid" | "host" | "role" | "startedAt" | "exitCode"
> & {
  /** Running attempts only. */
  lease: LeaseView | null;
};

export interface Situation {
  role: Role;
  followerMode: FollowerMode;
  /** False when no release id was found: every process runs the command in turn. */
  versioned: boolean;
  /** The attempt that matters for this release and task: a succeeded one if any, else the latest. */
  latest: AttemptView | undefined;
  /** The running attempt that owns this lock now (of any release or task), if any. */
  holder: AttemptView | undefined;
  /**
   * The attempt this process found already finished in its first read of the ledger: an outcome from
   * before it started, which it did not wait on. Every other finished attempt is one it waited on.
   */
  finishedBeforeStart: number | undefined;
  timedOut: boolean;
  orphanPolicy: OrphanPolicy;
}

/** Why a process waits: for the owner's outcome, for an expired owner's lease, or for its command's sessions. */
export type WaitReason = "outcome" | "lease" | "orphans";

export type Decision =
  | { action: "claim" }
  | { action: "done"; reason: "already-succeeded" | "leader-succeeded"; attempt: AttemptView }
  | { action: "skip" }
  | { action: "wait"; on: AttemptView | undefined; until: WaitReason }
  | { action: "fail"; reason: "failed" | "stopped" | "abandoned"; attempt: AttemptView }
  | { action: "timeout"; on: AttemptView | undefined }
  | { action: "abandon"; attempt: AttemptView }
  | { action: "end-orphans"; attempt: AttemptView; pids: readonly number[] };

/** Interrupted, lost or abandoned: the attempt ended without its command deciding the outcome. */
export function isStopped(status: AttemptStatus): boolean {
  return status === "interrupted" || status === "lost" || status === "abandoned";
}

/** A running attempt whose owner is gone: its lease expired, or its proven lock session ended. */
export function isOwnerGone(attempt: AttemptView): boolean {
  const lease = attempt.lease;
  return lease !== null && (lease.leftMs <= 0 || lease.sessionGone === true);
}

export type TakeoverStep =
  | { step: "wait-lease"; leftMs: number }
  | { step: "wait-orphans"; pids: readonly number[] }
  | { step: "end-orphans"; pids: readonly number[] }
  | { step: "abandon" };

/**
 * When another process may take over a running attempt. Only once its lease has expired by the
 * database clock (its leader stops the command before then, or is gone), and only once the command's
 * own sessions have left: a dead leader's command may outlive it. A lost session alone is not enough.
 */
export function takeover(holder: AttemptView, orphanPolicy: OrphanPolicy): TakeoverStep {
  const lease = holder.lease;
  if (lease === null) return { step: "abandon" }; // not running: nothing to wait for
  if (lease.leftMs > 0) return { step: "wait-lease", leftMs: lease.leftMs };
  if (lease.orphans.length > 0) {
    return orphanPolicy === "terminate"
      ? { step: "end-orphans", pids: lease.orphans }
      : { step: "wait-orphans", pids: lease.orphans };
  }
  return { step: "abandon" };
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
    const on = latest?.status === "running" ? latest : undefined;
    if (on !== undefined && isOwnerGone(on)) return { action: "fail", reason: "abandoned", attempt: on };
    return s.timedOut ? { action: "timeout", on } : { action: "wait", on, until: "outcome" };
  }

  // leader or auto: claim the task when nobody owns the lock; an owner is waited on, or taken over.
  const holder = s.holder;
  if (holder === undefined) return { action: "claim" };
  if (s.timedOut) return { action: "timeout", on: holder };
  const step = takeover(holder, s.orphanPolicy);
  switch (step.step) {
    case "wait-lease":
      return { action: "wait", on: holder, until: isOwnerGone(holder) ? "lease" : "outcome" };
    case "wait-orphans":
      return { action: "wait", on: holder, until: "orphans" };
    case "end-orphans":
      return { action: "end-orphans", attempt: holder, pids: step.pids };
    case "abandon":
      return { action: "abandon", attempt: holder };
  }
}

/** How a waiter waits: listen for NOTIFY on a session of its own, else poll the ledger. */
export interface WaitPlan {
  listen: boolean;
  /** Keep the connection between reads; a crowded server gets it back between polls. */
  holdConnection: boolean;
  /** How long to sleep before the next read (a NOTIFY may end it sooner). */
  sleepMs: number;
}

/** Poll bounds: through a pooler a waiter learns an outcome within POLL_POOLED_MAX_MS. */
export const POLL_MIN_MS = 100;
export const POLL_LISTEN_MAX_MS = 2000;
export const POLL_POOLED_MAX_MS = 500;
export const POLL_CROWDED_MAX_MS = 3000;

/**
 * The waiting strategy. `round` counts the waits so far (backoff); `leaseLeftMs` is the lease left of
 * an owner being waited out, so a waiter wakes when it ends; `leftMs` is what is left of the timeout.
 */
export function planWait(w: {
  sessionProven: boolean;
  crowded: boolean;
  round: number;
  leaseLeftMs: number | undefined;
  leftMs: number;
}): WaitPlan {
  const max = w.crowded ? POLL_CROWDED_MAX_MS : w.sessionProven ? POLL_LISTEN_MAX_MS : POLL_POOLED_MAX_MS;
  let sleepMs = Math.min(max, POLL_MIN_MS * 1.5 ** Math.max(0, w.round));
  if (w.leaseLeftMs !== undefined && w.leaseLeftMs > 0) sleepMs = Math.min(sleepMs, w.leaseLeftMs + 20);
  sleepMs = Math.max(0, Math.min(sleepMs, w.leftMs));
  return { listen: w.sessionProven && !w.crowded, holdConnection: !w.crowded, sleepMs };
}
