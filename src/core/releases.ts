// Attempts grouped into releases (one per release id and task), for the status page and its API.
// Pure: the attempts and the outcomes of processes that waited on no attempt go in, releases come out.

import type { AttemptWithFollowers, FollowerRecord } from "./records.js";

export interface ReleaseRecord {
  releaseId: string | null;
  task: string;
  /** The app whose attempt succeeded, or whose attempt was the last. */
  leader: string | null;
  status: string;
  startedAt: string;
  /** Oldest first. */
  attempts: AttemptWithFollowers[];
  /** Outcomes of processes that did not run an attempt, not tied to one (skips, timeouts before any attempt). */
  others: FollowerRecord[];
}

const keyOf = (releaseId: string | null, task: string) => `${releaseId ?? ""}\u0000${task}`;

/** Newest release first; `attempts` newest first as the ledger reads them. */
export function groupReleases(
  attempts: readonly AttemptWithFollowers[],
  others: readonly FollowerRecord[],
): ReleaseRecord[] {
  const releases = new Map<string, ReleaseRecord>();
  for (const attempt of [...attempts].reverse()) {
    const key = keyOf(attempt.releaseId, attempt.task);
    const release = releases.get(key) ?? {
      releaseId: attempt.releaseId,
      task: attempt.task,
      leader: null,
      status: attempt.status,
      startedAt: attempt.startedAt,
      attempts: [],
      others: [],
    };
    release.attempts.push(attempt);
    release.status = release.status === "succeeded" ? "succeeded" : attempt.status;
    if (attempt.status === "succeeded" || release.leader === null || release.status !== "succeeded") {
      release.leader = attempt.app;
    }
    releases.set(key, release);
  }
  for (const outcome of others) releases.get(keyOf(outcome.releaseId, outcome.task))?.others.push(outcome);
  return [...releases.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}
