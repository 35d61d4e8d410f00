// The ledger's records, one type per table, exactly as the database builds them (json_build_object
// in camelCase, see db/ledger/attempts.ts and db/ledger/waiters.ts): every reader shares these.

import type { Blocked } from "./blocking.js";
import type { LockTry } from "./lock-guard.js";

/** How an attempt stands: running, or how it ended; `duplicate` marks extra successes recorded by 0.1.0. */
export const ATTEMPT_STATUSES = [
  "running",
  "succeeded",
  "failed",
  "interrupted",
  "lost",
  "abandoned",
  "duplicate",
] as const;
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];

/** How a process that did not run the command stands: waiting (or gone), or how it ended. */
export const FOLLOWER_OUTCOMES = [
  "waiting",
  "gone",
  "became-leader",
  "succeeded",
  "already-done",
  "failed",
  "timeout",
  "skipped",
  "interrupted",
] as const;
export type FollowerOutcomeStatus = (typeof FOLLOWER_OUTCOMES)[number];

/** What the ledger says of a running attempt's lease, all measured by the database clock. */
export interface Lease {
  /** When the lease ends unless renewed (ISO 8601, UTC). */
  endsAt: string;
  /** Milliseconds left on the lease; 0 or less means it expired. */
  leftMs: number;
  /** Milliseconds since its leader last renewed it. */
  renewedMsAgo: number;
  /**
   * When the leader holds the advisory lock on a session proven to be its own: whether that backend no
   * longer holds it (the leader's session is gone). Null when it holds no lock (a pooler).
   */
  sessionGone: boolean | null;
  /** Backend pids of the attempt's own command sessions still connected (read once the lease expired). */
  orphans: number[];
}

/** One row of `attempts`: one execution of a task's command for a release, by one process. */
export interface Attempt {
  id: number;
  releaseId: string | null;
  task: string;
  lockName: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  command: string | null;
  status: AttemptStatus;
  exitCode: number | null;
  signal: string | null;
  /** ISO 8601 in UTC, like every time of a record. */
  startedAt: string;
  /** The last renewal of the lease. */
  heartbeatAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  /** The end of the command's output (scrubbed); null when not read. */
  outputTail: string | null;
  /** The backend holding the advisory lock for this attempt, when its leader's session was proven its own. */
  lockBackendPid: number | null;
  /** The tries the lock-queue guard cancelled, oldest first (empty when none was). */
  tries: LockTry[];
  /** Running attempts only. */
  lease: Lease | null;
  /** Running attempts only: what one of its command's sessions has waited on, seen at the last renewal. */
  blocked: Blocked | null;
}

/** One row of `follower_outcomes`: a process that did not run the command, and how it stands. */
export interface FollowerRecord {
  id: number;
  releaseId: string | null;
  task: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  mode: string;
  /** The attempt it waited on, if any. */
  attemptId: number | null;
  /** "waiting" while its heartbeat is fresh, "gone" once it stopped (by the database clock), else how it ended. */
  outcome: FollowerOutcomeStatus;
  /** null while waiting, when gone, and for a waiter that became the leader. */
  exitCode: number | null;
  /** Until now for a live waiter; until its last heartbeat for a gone one. */
  waitedMs: number;
  /** When it ended; for a waiter, when it was last known to wait. */
  recordedAt: string;
  /** When it started waiting (null for processes that never waited, such as skips). */
  startedAt: string | null;
}

/** An attempt with the processes that waited on it: what status, history and the page show. */
export interface AttemptWithFollowers extends Attempt {
  followers: FollowerRecord[];
}
