// What blocks the leader's command: one of its sessions (they carry the attempt in application_name)
// waiting on a lock that another session holds, found by the leader's lease renewal in the database
// (pg_blocking_pids, see blockedSql in ledger.ts) and said the same way by the run, status and the page.

import { formatDuration } from "./duration.js";

/** A command session waiting on a lock, and the session that blocks it (JSON from the database). */
export interface Blocked {
  /** The command's waiting session. */
  pid: number;
  /** When it started waiting (pg_locks.waitstart; query_start before PostgreSQL 14). */
  since: string;
  lockType: string;
  mode: string;
  /** The table, for a relation lock. */
  relation: string | null;
  /** When the leader saw it, by the database clock. */
  seenAt: string;
  blocker: {
    pid: number;
    applicationName: string | null;
    /** null when this database user may not see the blocker's activity (another role without pg_read_all_stats). */
    state: string | null;
    stateSince: string | null;
    xactStart: string | null;
    /** Whether the blocker itself waits on a lock (it is queued ahead, not the root). */
    waiting: boolean;
  };
}

const clock = (iso: string) => `${iso.slice(11, 19)} UTC`;
const since = (now: string, iso: string) => formatDuration(Math.max(0, Date.parse(now) - Date.parse(iso)));

/** The one sentence that says what blocks the command, since when, and what to do; `now` by the database clock. */
export function describeBlock(blocked: Blocked, now: string = blocked.seenAt): string {
  const b = blocked.blocker;
  const lock = blocked.relation
    ? `${blocked.mode} on ${blocked.relation}`
    : `${blocked.mode} (${blocked.lockType} lock)`;
  const who = [
    b.applicationName ? `application_name "${b.applicationName}"` : "no application_name",
    b.state === null
      ? "state not visible to this database user"
      : `${b.state}${b.stateSince === null ? "" : ` since ${clock(b.stateSince)} (${since(now, b.stateSince)})`}`,
    ...(b.xactStart === null ? [] : [`transaction open since ${clock(b.xactStart)}`]),
    ...(b.waiting ? ["itself waiting on a lock"] : []),
  ].join(", ");
  const fix =
    b.state === "idle in transaction" || b.state === "idle in transaction (aborted)"
      ? `that session holds a transaction open: commit or roll back in that app, or end it with SELECT pg_terminate_backend(${b.pid}) if that is safe`
      : `wait for that session's work to finish, or end it with SELECT pg_terminate_backend(${b.pid}) if that is safe`;
  return `the command's session (backend pid ${blocked.pid}) has waited ${since(now, blocked.since)} for ${lock}, blocked by backend pid ${b.pid} (${who}); ${fix}.`;
}

/** Whether two observations name the same wait (the same session, blocked by the same backend). */
export function sameBlock(a: Blocked | null, b: Blocked | null): boolean {
  if (a === null || b === null) return a === b;
  return a.pid === b.pid && a.blocker.pid === b.blocker.pid;
}
