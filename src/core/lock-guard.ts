// The lock-queue guard, as pure rules: what a cancelled try is, when the next try comes (growing waits
// with jitter, never past the deadline), and the sentences the run, status, the page and the
// notification say about it. The cancel itself is one statement in the database (db/ledger/guard.ts).

import { formatDuration } from "./duration.js";

/** The session that held the lock the command's statement waited for (JSON from the database). */
export interface GuardBlocker {
  pid: number;
  applicationName: string | null;
  /** null when this database user may not see the blocker's activity. */
  state: string | null;
  stateSince: string | null;
  xactStart: string | null;
  /** The first line of its current or last query (null when not visible). */
  query: string | null;
}

/** One cancelled try of a lead's command, as the ledger keeps it (attempts.tries). */
export interface LockTry {
  /** 1 for the first run of the command. */
  try: number;
  /** How many tries the lead may make (--lock-retries). */
  of: number;
  /** The command's statement that was cancelled: its backend, its lock, how long it had waited. */
  pid: number;
  mode: string;
  relation: string | null;
  waitedMs: number;
  /** How many other sessions were queued behind it (the app's stalled queries). */
  queued: number;
  cancelledAt: string;
  blocker: GuardBlocker;
  /** When the next try starts, in ms after the cancel; null when this was the last try. */
  retryInMs: number | null;
}

/** The guard's settings: off, or how long a queued-behind wait may last, how many tries, the first wait. */
export interface GuardSettings {
  lockWaitMs: number | null;
  tries: number;
  retryWaitMs: number;
}

/**
 * The wait before try `next` (2, 3, …): retryWaitMs, doubled for each later try, with ±20 % jitter so
 * that two releases blocked by the same session do not come back at the same instant.
 */
export function retryWait(next: number, retryWaitMs: number, random: number): number {
  const base = retryWaitMs * 2 ** Math.max(0, next - 2);
  return Math.round(base * (0.8 + 0.4 * random));
}

/**
 * Whether a cancelled try is followed by another, and after how long: only while tries are left and
 * the next try could start before the deadline (--wait-timeout after the lead began).
 */
export function nextTry(input: {
  done: number;
  settings: GuardSettings;
  nowMs: number;
  deadlineMs: number;
  random: number;
}): { retry: true; waitMs: number } | { retry: false; why: "tries" | "deadline" } {
  const { done, settings } = input;
  if (done >= settings.tries) return { retry: false, why: "tries" };
  const waitMs = retryWait(done + 1, settings.retryWaitMs, input.random);
  if (input.nowMs + waitMs >= input.deadlineMs) return { retry: false, why: "deadline" };
  return { retry: true, waitMs };
}

const clock = (iso: string) => `${iso.slice(11, 19)} UTC`;
const ago = (now: string, iso: string) => formatDuration(Math.max(0, Date.parse(now) - Date.parse(iso)));

/** Who the blocker is, in a few words: pid, application_name, state since when, its query's first line. */
export function describeBlocker(b: GuardBlocker, now: string): string {
  const parts = [
    `backend ${b.pid}`,
    b.applicationName ? b.applicationName : "no application_name",
    b.state === null
      ? "state not visible to this database user"
      : `${b.state}${b.stateSince === null ? "" : ` for ${ago(now, b.stateSince)} (since ${clock(b.stateSince)})`}`,
  ];
  const query = b.query === null || b.query.trim() === "" ? "" : `, last query "${b.query.trim()}"`;
  return `${parts.join(", ")}${query}`;
}

/** "try 2 of 5: cancelled after 3 s behind backend 2851, web.1, idle in transaction for 3 min" */
export function describeTry(t: LockTry): string {
  const lock = t.relation === null ? t.mode : `${t.mode} on ${t.relation}`;
  const queued = `${t.queued} ${t.queued === 1 ? "session was" : "sessions were"} queued behind it`;
  return `try ${t.try} of ${t.of}: cancelled after ${formatDuration(t.waitedMs)} waiting for ${lock} behind ${describeBlocker(t.blocker, t.cancelledAt)}; ${queued}`;
}

/** What the leader says when the guard cancels a statement, and what comes next. */
export function describeCancel(t: LockTry): string {
  const next =
    t.retryInMs === null
      ? "no tries are left"
      : `the command runs again in ${formatDuration(t.retryInMs)} (try ${t.try + 1} of ${t.of}) if it stops on the error`;
  return `lock guard: ${describeTry(t)}. The app's queries go on; ${next}.`;
}

/** The one sentence of a lead whose tries ran out: what blocked the last one, and what to do. */
export function describeBlockedOut(t: LockTry, why: "tries" | "deadline"): string {
  const reason =
    why === "tries"
      ? `all ${t.of} tries were cancelled`
      : `${t.try} ${t.try === 1 ? "try was" : "tries were"} cancelled and the next one would start after --wait-timeout`;
  return `${reason} to keep the app's queries going: the last waited behind ${describeBlocker(t.blocker, t.cancelledAt)}. End that session's transaction (or SELECT pg_terminate_backend(${t.blocker.pid}) if that is safe) and release again, or raise --lock-retries.`;
}
