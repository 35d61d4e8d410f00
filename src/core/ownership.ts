// A leader's ownership, as pure rules: how long its lease lasts, by when it must have stopped its
// command if it cannot renew, and when what it observed means ownership is lost. No IO; the scope
// that holds the lease (run/claim.ts) feeds these its observations and acts on the answer.

import { formatDuration } from "./duration.js";

/** How often the leader renews its lease, and how long one renewal may take. */
/**
 * Why an attempt was recorded abandoned: what the takeover's one statement checked (its lease expired,
 * its lock no longer held, none of its command's sessions connected). The taker's line and the
 * abandoned notification both say it, in these words.
 */
export const ABANDONED_BECAUSE = "its lease expired with no session of its leader or its command left";

export const RENEW_EVERY_MS = 1000;
export const RENEW_TIMEOUT_MS = 1500;
/** Time between the command's forced end and the lease's end, by the leader's clock. */
export const LEASE_MARGIN_MS = 3000;

/**
 * The lease a leader takes: after its last renewal, a leader that can renew no more stops its command
 * (SIGTERM, then SIGKILL after the kill grace) and still leaves LEASE_MARGIN_MS before anyone may take over.
 */
export function leaseFor(killGraceMs: number): number {
  return 2 * RENEW_EVERY_MS + RENEW_TIMEOUT_MS + killGraceMs + LEASE_MARGIN_MS;
}

/**
 * How long after the leader's own stop time its command's supervisor stops the command when the leader
 * cannot (paused): a leader that answers always acts first, and the command is still gone
 * LEASE_MARGIN_MS - SUPERVISOR_LATE_MS before anyone may take over.
 */
export const SUPERVISOR_LATE_MS = 1000;

/** When a leader that has not renewed since `lastRenewedMs` must stop its command (Date.now() scale). */
export function stopBy(lastRenewedMs: number, leaseMs: number, killGraceMs: number): number {
  return lastRenewedMs + leaseMs - killGraceMs - LEASE_MARGIN_MS;
}

/** What the leader saw at one renewal, or between renewals. */
export type Observation =
  /** The renewal statement answered. */
  | { kind: "renewed"; owned: boolean; lockHeld: boolean }
  /** The renewal statement failed or did not answer in time. */
  | { kind: "renewal-failed"; message: string }
  /** The connection to renew on is not the one that holds the lock (it was reopened). */
  | { kind: "session-changed" }
  /** The lock session reported an error or closed (its client's events). */
  | { kind: "lock-session-ended"; message: string | undefined }
  /** The stop time came (a timer) with no renewal since. */
  | { kind: "stop-time" };

export interface OwnershipState {
  /** Whether this leader holds the advisory lock on a proven session: losing that session loses ownership. */
  holdsLock: boolean;
  lastRenewedMs: number;
  stopByMs: number;
  nowMs: number;
}

/** Ownership still holds (`renewed`: the lease was extended now), or it is lost, with the reason said. */
export type Verdict = { lost: false; renewed: boolean } | { lost: true; reason: string };

const lockSessionFailed = (message: string | undefined) =>
  message === undefined ? "the lock session closed" : `the lock session failed (${message})`;

/**
 * The loss rule. Where the lock is held, its session is the proof: any failure of it loses ownership at
 * once (its backend may be gone and its lock free), and the stop time alone does not (a paused leader
 * whose session lives is stalled, not gone: it renews again when it resumes). Without a lock, a failed
 * renewal is retried until the stop time, which is lost at once; a lease that is no longer ours
 * (expired, or taken over) is lost at once, as is a lock that our session no longer holds.
 */
export function judge(state: OwnershipState, seen: Observation): Verdict {
  const late = () => `could not renew the lease for ${formatDuration(state.nowMs - state.lastRenewedMs)}`;
  switch (seen.kind) {
    case "lock-session-ended":
      return state.holdsLock ? { lost: true, reason: lockSessionFailed(seen.message) } : keep(state, late);
    case "session-changed":
      return state.holdsLock ? { lost: true, reason: lockSessionFailed(undefined) } : keep(state, late);
    case "renewal-failed":
      if (state.holdsLock) return { lost: true, reason: lockSessionFailed(seen.message) };
      return state.nowMs >= state.stopByMs
        ? { lost: true, reason: `${late()} (${seen.message})` }
        : { lost: false, renewed: false };
    case "stop-time":
      // With a lock session, nobody may take over while it lives: its failures decide, not the clock.
      return state.holdsLock ? { lost: false, renewed: false } : keep(state, late);
    case "renewed":
      if (!seen.owned) return { lost: true, reason: "its lease expired or was taken over" };
      if (!seen.lockHeld) return { lost: true, reason: "this session no longer holds the advisory lock" };
      return { lost: false, renewed: true };
  }
}

function keep(state: OwnershipState, late: () => string): Verdict {
  return state.nowMs >= state.stopByMs ? { lost: true, reason: late() } : { lost: false, renewed: false };
}

/**
 * The one sentence for a stalled leader (its lease ran out, its lock session lives): said by waiters,
 * status, the page and doctor, with the deliberate way out.
 */
export function describeStalled(lockBackendPid: number | null, renewedMsAgo: number): string {
  const pid = lockBackendPid ?? "?";
  return `its leader's lock session (backend pid ${pid}) is connected but has not renewed the lease for ${formatDuration(renewedMsAgo)}: paused or frozen? Nobody takes it over while that session lives; to take over on purpose, end that session (release-orchestrator run --orphan-sessions terminate, or SELECT pg_terminate_backend(${pid})), and its leader, if it resumes, stops its command.`;
}
