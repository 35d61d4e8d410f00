// The body of GET /api/releases: the ledger's releases (core/releases.ts) with the texts the status
// page shows and must not re-implement, made by the tool's own rules: the short release id
// (core/release-id.ts), durations (core/duration.ts) and what blocks a running attempt
// (core/blocking.ts). Pure: serve-reader.ts reads the ledger and the database clock.

import { describeBlock } from "../core/blocking.js";
import { formatDuration } from "../core/duration.js";
import { describeTry } from "../core/lock-guard.js";
import type { AttemptWithFollowers, FollowerRecord } from "../core/records.js";
import { shortReleaseId } from "../core/release-id.js";
import type { ReleasePhase } from "../core/release-phase.js";
import type { ReleaseRecord } from "../core/releases.js";
import type { LockHolder } from "../db/session.js";
import type { PageData } from "./page/api.js";

export interface FollowerResponse extends FollowerRecord {
  /** waitedMs as the tool writes a duration: "850 ms", "34 s", "1 m 5 s". */
  waitedText: string;
}

export interface AttemptResponse extends Omit<AttemptWithFollowers, "followers"> {
  /** How long it ran (durationMs, or finishedAt - startedAt); while running, how long so far, as of the read. */
  durationText: string;
  /** Running attempts: what blocks the command, in the sentence the run prints (with the fix), as of the read. */
  blockedText: string | null;
  /** The lock-queue guard's cancelled tries, each in the sentence the run prints ("try 1 of 5: cancelled after 3 s …"). */
  triesText: string[];
  followers: FollowerResponse[];
}

export interface ReleaseResponse extends Omit<ReleaseRecord, "attempts" | "others"> {
  /** The release id's short form (7 digits of a commit hash); null when unversioned. */
  shortReleaseId: string | null;
  /**
   * From the first attempt's start or wait to the last one's end (a running attempt ends at the read):
   * the page's time axis.
   */
  span: { from: string; to: string; text: string };
  attempts: AttemptResponse[];
  others: FollowerResponse[];
}

/** What GET /api/releases returns, and what the page renders. */
export interface ReleasesResponse {
  /** The ledger's schema. */
  schema: string;
  /** At most this many attempts, newest first, grouped into releases. */
  limit: number;
  /** Who holds the release lock now (null: nobody). */
  lock: {
    name: string;
    holder: { pid: number; applicationName: string | null; since: string | null } | null;
  };
  /** Newest first: the releases run from tasks files, each as a whole (core/release-phase.ts). */
  phases: PhaseResponse[];
  /** Newest release first. */
  releases: ReleaseResponse[];
}

export interface PhaseResponse extends ReleasePhase {
  /** The release id's short form (7 digits of a commit hash). */
  shortReleaseId: string;
}

/** The page (page/page.ts) reads the response as PageData: a field it needs renamed here fails this line. */
type Assignable<T extends U, U> = T;
type _PageReadsTheResponse = Assignable<ReleasesResponse, PageData>;

/** What serve read for one /api/releases. */
export interface ReleasesRead {
  schema: string;
  limit: number;
  lockName: string;
  holder: LockHolder | undefined;
  releases: ReleaseRecord[];
  phases: ReleasePhase[];
  /** When they were read, by the database clock (ms). */
  now: number;
}

export function toReleasesResponse(read: ReleasesRead): ReleasesResponse {
  const { holder } = read;
  return {
    schema: read.schema,
    limit: read.limit,
    lock: {
      name: read.lockName,
      holder:
        holder === undefined
          ? null
          : { pid: holder.pid, applicationName: holder.applicationName, since: holder.backendStart },
    },
    phases: read.phases.map((phase) => ({ ...phase, shortReleaseId: shortReleaseId(phase.releaseId) })),
    releases: read.releases.map((release) => toReleaseResponse(release, read.now)),
  };
}

export function toReleaseResponse(release: ReleaseRecord, now: number): ReleaseResponse {
  const attempts = release.attempts.map((attempt) => toAttemptResponse(attempt, now));
  const others = release.others.map(toFollowerResponse);
  const spans = [
    { start: Date.parse(release.startedAt), end: Date.parse(release.startedAt) },
    ...attempts.map((a) => ({ start: Date.parse(a.startedAt), end: endOf(a, now) })),
    ...[...attempts.flatMap((a) => a.followers), ...others].map((f) => {
      const end = Date.parse(f.recordedAt);
      return { start: end - f.waitedMs, end };
    }),
  ];
  const from = Math.min(...spans.map((s) => s.start));
  const to = Math.max(...spans.map((s) => s.end));
  return {
    ...release,
    shortReleaseId: release.releaseId === null ? null : shortReleaseId(release.releaseId),
    span: {
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      text: formatDuration(to - from),
    },
    attempts,
    others,
  };
}

/** When an attempt ended; a running one, at `now` (never before it started). */
function endOf(attempt: AttemptWithFollowers | AttemptResponse, now: number): number {
  const start = Date.parse(attempt.startedAt);
  return attempt.finishedAt === null ? Math.max(now, start) : Date.parse(attempt.finishedAt);
}

function toAttemptResponse(attempt: AttemptWithFollowers, now: number): AttemptResponse {
  const ran = attempt.durationMs ?? endOf(attempt, now) - Date.parse(attempt.startedAt);
  return {
    ...attempt,
    durationText: formatDuration(ran),
    blockedText:
      attempt.blocked === null ? null : describeBlock(attempt.blocked, new Date(now).toISOString()),
    triesText: attempt.tries.map(describeTry),
    followers: attempt.followers.map(toFollowerResponse),
  };
}

function toFollowerResponse(follower: FollowerRecord): FollowerResponse {
  return { ...follower, waitedText: formatDuration(follower.waitedMs) };
}
