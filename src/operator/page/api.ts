// What the status page reads of GET /api/releases: the fields page.ts renders, as the browser sees
// them. No imports, so that the page's own tsconfig (the DOM, no node) can check this file too; the
// server side checks that the response it sends (operator/releases-api.ts) is assignable to PageData,
// so a field renamed or retyped on one side fails `npm run typecheck`.

export interface PageFollower {
  app: string;
  host: string;
  pid: number;
  /** How it ended, or "waiting" / "gone". */
  outcome: string;
  exitCode: number | null;
  waitedMs: number;
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
  durationMs: number | null;
  outputTail: string | null;
  blockedText: string | null;
  followers: PageFollower[];
}

export interface PageRelease {
  releaseId: string | null;
  task: string;
  leader: string | null;
  status: string;
  attempts: PageAttempt[];
  others: PageFollower[];
}

export interface PageData {
  schema: string;
  lock: { holder: { pid: number; applicationName: string | null; since: string | null } | null };
  releases: PageRelease[];
}
