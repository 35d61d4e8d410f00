// What the status page reads of GET /api/releases: the fields page.ts renders, as the browser sees
// them. The texts that follow the tool's rules (short release id, durations) come ready from the
// server, so the page never re-implements them. No imports, so that the page's own tsconfig (the DOM,
// no node) can check this file too; operator/releases-api.ts checks that the response it sends is
// assignable to PageData, so a field renamed or retyped on one side fails `npm run typecheck`.

export interface PageFollower {
  app: string;
  host: string;
  pid: number;
  /** How it ended, or "waiting" / "gone". */
  outcome: string;
  exitCode: number | null;
  waitedMs: number;
  /** waitedMs as the tool writes durations ("1 m 5 s"). */
  waitedText: string;
  /** When it ended; for a waiter, its last heartbeat. */
  recordedAt: string;
  startedAt: string | null;
}

export interface PageAttempt {
  id: number;
  app: string;
  host: string;
  pid: number;
  role: string;
  command: string | null;
  status: string;
  exitCode: number | null;
  signal: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** How long it ran; while running, how long so far, as of the read (the tool's duration text). */
  durationText: string;
  outputTail: string | null;
  blockedText: string | null;
  /** The lock-queue guard's cancelled tries, each in the sentence the run prints. */
  triesText: string[];
  followers: PageFollower[];
}

export interface PageRelease {
  releaseId: string | null;
  /** The release id's short form, by the tool's rule; null when unversioned. */
  shortReleaseId: string | null;
  task: string;
  leader: string | null;
  status: string;
  /** The release's time axis: first start to last end (a running attempt ends at the read), and its text. */
  span: { from: string; to: string; text: string };
  attempts: PageAttempt[];
  others: PageFollower[];
}

export interface PageData {
  schema: string;
  lock: { holder: { pid: number; applicationName: string | null; since: string | null } | null };
  releases: PageRelease[];
}
