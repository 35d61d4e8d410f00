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

/** One run of a task of a release as a whole: the release's run of a `release` task, or one app's of an `app` task. */
export interface PagePhaseRun {
  /** The app an `app` task runs for; null for a `release` task. */
  forApp: string | null;
  /** succeeded, running, failed or pending. */
  state: string;
  /** The attempt that decides the state; null while pending. */
  attempt: { id: number; app: string } | null;
}

export interface PagePhaseTask {
  name: string;
  /** release, app or every. */
  scope: string;
  /** A post-deploy task's apps; empty otherwise. */
  after: string[];
  /** succeeded, running, failed, pending, or unrecorded (an `every` task). */
  state: string;
  /** A post-deploy task not run yet: the named apps it waits for. */
  waitsFor: string[];
  /** The line status prints for the task ("contract (release, after s-web, s-admin): waits for s-admin."). */
  text: string;
  runs: PagePhaseRun[];
}

/** A release run from tasks files, as a whole. */
export interface PagePhase {
  releaseId: string;
  shortReleaseId: string;
  /** The apps that recorded a plan for it. */
  apps: string[];
  /** succeeded, running, failed or pending. */
  state: string;
  /** What is still to happen, one sentence each. */
  pending: string[];
  tasks: PagePhaseTask[];
}

export interface PageData {
  schema: string;
  lock: { holder: { pid: number; applicationName: string | null; since: string | null } | null };
  /** Newest first: the releases run from tasks files, each as a whole. */
  phases: PagePhase[];
  releases: PageRelease[];
}
