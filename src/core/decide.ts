// The decisions at the heart of the tool, as pure functions: role x ledger state -> what this process
// does next, and when a stale owner may be taken over. No IO; tested over their whole space.

import type { FollowerMode, OrphanPolicy, Role } from "./options.js";
import type { Attempt, AttemptStatus, Lease } from "./records.js";

export { ATTEMPT_STATUSES, type AttemptStatus } from "./records.js";

/** What the ledger says of a running attempt's lease (see Lease); the decision needs these parts. */
export type LeaseView = Pick<Lease, "leftMs" | "renewedMsAgo" | "sessionGone" | "orphans">;

/** The part of an attempt's record the decision needs. */
export type AttemptView = Pick<
  Attempt,
  | "id"
  | "status"
  | "releaseId"
  | "app"
  | "pid"
  | "host"
  | "role"
  | "startedAt"
  | "heartbeatAt"
  | "exitCode"
  | "lockBackendPid"
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

/**
 * Why a process waits: for the owner's outcome; for the lease of an owner whose session is gone; for a
 * stalled owner (its lease ran out, its lock session lives: paused or frozen); or for the sessions of a
 * gone owner's command.
 */
export type WaitReason = "outcome" | "lease" | "stalled" | "orphans";

export type Decision =
  | { action: "claim" }
  | { action: "done"; reason: "already-succeeded" | "leader-succeeded"; attempt: AttemptView }
  | { action: "skip" }
  | { action: "wait"; on: AttemptView | undefined; until: WaitReason }
  | { action: "fail"; reason: "failed" | "stopped" | "abandoned"; attempt: AttemptView }
  | { action: "timeout"; on: AttemptView | undefined }
  | { action: "abandon"; attempt: AttemptView }
  | { action: "end-orphans"; attempt: AttemptView; pids: readonly number[] }
  | { action: "end-stalled"; attempt: AttemptView; pid: number };

/** Interrupted, lost or abandoned: the attempt ended without its command deciding the outcome. */
export function isStopped(status: AttemptStatus): boolean {
  return status === "interrupted" || status === "lost" || status === "abandoned";
}

/**
 * A running attempt whose owner is stalled: its lease ran out but its lock session is alive (a paused
 * or frozen leader, whose command may still be at work). A lease that ran out is not proof of death
 * where a lock session says otherwise.
 */
export function isStalled(attempt: Pick<AttemptView, "lease">): boolean {
  const lease = attempt.lease;
  return lease !== null && lease.leftMs <= 0 && lease.sessionGone === false;
}

/**
 * A running attempt whose owner is gone: its proven lock session ended, or (without a lock session, a
 * pooler) its lease ran out. A stalled owner is not gone.
 */
export function isOwnerGone(attempt: AttemptView): boolean {
  const lease = attempt.lease;
  return lease !== null && (lease.sessionGone === true || (lease.leftMs <= 0 && lease.sessionGone === null));
}

export type TakeoverStep =
  | { step: "wait-lease"; leftMs: number }
  | { step: "wait-stalled" }
  | { step: "end-stalled"; pid: number }
  | { step: "wait-orphans"; pids: readonly number[] }
  | { step: "end-orphans"; pids: readonly number[] }
  | { step: "abandon" };

/**
 * When another process may take over a running attempt: only once its lease has expired by the
 * database clock (its leader stops the command before then, or is gone) AND its lock session, if it
 * holds one, is gone (else it is stalled: waited for, or with --orphan-sessions terminate, its
 * session is ended on purpose) AND no session of its command is connected (a command can outlive
 * its leader). A lost session alone is not enough.
 */
export function takeover(holder: AttemptView, orphanPolicy: OrphanPolicy): TakeoverStep {
  const lease = holder.lease;
  if (lease === null) return { step: "abandon" }; // not running: nothing to wait for
  if (lease.leftMs > 0) return { step: "wait-lease", leftMs: lease.leftMs };
  if (lease.sessionGone === false) {
    return orphanPolicy === "terminate" && holder.lockBackendPid !== null
      ? { step: "end-stalled", pid: holder.lockBackendPid }
      : { step: "wait-stalled" };
  }
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
    if (s.timedOut) return { action: "timeout", on };
    return { action: "wait", on, until: on !== undefined && isStalled(on) ? "stalled" : "outcome" };
  }

  // leader or auto: claim the task when nobody owns the lock; an owner is waited on, or taken over.
  const holder = s.holder;
  if (holder === undefined) return { action: "claim" };
  if (s.timedOut) return { action: "timeout", on: holder };
  const step = takeover(holder, s.orphanPolicy);
  switch (step.step) {
    case "wait-lease":
      return { action: "wait", on: holder, until: isOwnerGone(holder) ? "lease" : "outcome" };
    case "wait-stalled":
      return { action: "wait", on: holder, until: "stalled" };
    case "end-stalled":
      return { action: "end-stalled", attempt: holder, pid: step.pid };
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
