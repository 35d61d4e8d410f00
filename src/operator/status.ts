// `status`: who holds the release now (the lock, the running attempt and its lease, what blocks its
// command), who waits for it, and the latest attempt of each release. Plain data, then its text.

import type pg from "pg";
import { describeBlock } from "../core/blocking.js";
import type { Config } from "../core/config.js";
import { isStalled } from "../core/decide.js";
import { formatDuration } from "../core/duration.js";
import { describeStalled } from "../core/ownership.js";
import { describeTry, type LockTry } from "../core/lock-guard.js";
import { deriveLockKey, type LockKey } from "../core/lock-key.js";
import type { AttemptWithFollowers, FollowerRecord } from "../core/records.js";
import { describePhase, type ReleasePhase } from "../core/release-phase.js";
import { readPhases } from "../db/ledger/plans.js";
import { readAttempts, readWaiters } from "../db/ledger/reads.js";
import { readPresence } from "../db/ledger/schema.js";
import { ledgerOf } from "../db/ledger/sql.js";
import { readLockHolder, type LockHolder } from "../db/session.js";
import { ago, cells, table, time } from "./format.js";

export interface StatusReport {
  lock: { name: string; key: LockKey; holder: LockHolder | null };
  /** `stalled`: its lease ran out while its lock session lives (a paused or frozen leader); nobody takes it over. */
  running: (AttemptWithFollowers & { heartbeatAgeMs: number; stalled: boolean })[];
  /** Processes recorded as waiting: "waiting" (heartbeat fresh) or "gone" (killed, or lost their connection). */
  waiters: FollowerRecord[];
  latest: AttemptWithFollowers[];
  /** The newest releases run from a tasks file, each as a whole (its tasks, who ran them, what is pending). */
  phases: ReleasePhase[];
  ledger: { schema: string; exists: boolean };
  now: string;
}

export async function readStatus(client: pg.Client, config: Config, limit = 10): Promise<StatusReport> {
  const key = deriveLockKey(config.lockName);
  const ledger = ledgerOf(config.schema, key);
  const holder = (await readLockHolder(client, key)) ?? null;
  const exists = (await readPresence(client, ledger)).version !== "missing";
  const now =
    (await client.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows[0]?.now ?? new Date();
  const recent = await readAttempts(client, ledger, { limit: 200, includeOutput: false });
  const waiters = await readWaiters(client, ledger);
  const phases = await readPhases(client, ledger, { limit: 3 });
  const running = recent
    .filter((a) => a.status === "running")
    .map((a) => ({ ...a, heartbeatAgeMs: now.getTime() - Date.parse(a.heartbeatAt), stalled: isStalled(a) }));
  const seen = new Set<string>();
  const latest: AttemptWithFollowers[] = [];
  for (const attempt of recent) {
    const release = `${attempt.releaseId ?? ""}\u0000${attempt.task}`;
    if (seen.has(release)) continue;
    seen.add(release);
    latest.push(attempt);
    if (latest.length >= limit) break;
  }
  return {
    lock: { name: config.lockName, key, holder },
    running,
    waiters,
    latest,
    phases,
    ledger: { schema: config.schema, exists },
    now: now.toISOString(),
  };
}

/** What the lease of a running attempt says: still owned, stalled, or its leader is gone. */
function leaseNote(now: string, a: AttemptWithFollowers): string {
  if (a.lease === null) return ".";
  const left = Date.parse(a.lease.endsAt) - Date.parse(now);
  if (left > 0)
    return `, lease ends in ${formatDuration(left)} unless renewed${a.lockBackendPid === null ? "" : ` (advisory lock on backend pid ${a.lockBackendPid})`}.`;
  if (isStalled(a))
    return ` — STALLED: its lease expired ${formatDuration(-left)} ago, but ${describeStalled(a.lockBackendPid, a.lease.renewedMsAgo)}`;
  return ` — its lease expired ${formatDuration(-left)} ago: its leader is gone, and the next run takes over once its command's sessions have left.`;
}

export function formatStatus(report: StatusReport): string {
  const out: string[] = [];
  const { holder } = report.lock;
  const key = `${report.lock.key.namespace}, ${report.lock.key.key}`;
  if (holder === null) {
    out.push(`Lock "${report.lock.name}" (key ${key}): free.`);
  } else {
    out.push(
      `Lock "${report.lock.name}" (key ${key}): held by backend pid ${holder.pid}` +
        (holder.applicationName ? ` (${holder.applicationName})` : "") +
        (holder.state ? `, ${holder.state}` : "") +
        (holder.backendStart
          ? `, connected since ${time(holder.backendStart)} (${ago(report.now, holder.backendStart)})`
          : "") +
        (holder.clientAddr ? `, from ${holder.clientAddr}` : "") +
        ".",
    );
  }
  if (!report.ledger.exists) {
    out.push(`No ledger yet (schema ${report.ledger.schema}): nothing has run here.`);
    return out.join("\n");
  }
  for (const a of report.running) {
    out.push(
      `Running: attempt #${a.id} by ${a.app} (${a.role}, pid ${a.pid} on ${a.host}) of ${a.task} for ${a.releaseId ?? "(unversioned)"}, ` +
        `since ${time(a.startedAt)} (${ago(report.now, a.startedAt)}), lease renewed ${formatDuration(a.heartbeatAgeMs)} ago` +
        leaseNote(report.now, a),
    );
    if (a.blocked !== null) out.push(`  Blocked: ${describeBlock(a.blocked, report.now)}`);
    for (const t of a.tries) out.push(`  Lock guard: ${describeTry(t)}.`);
  }
  if (report.running.length === 0) out.push("Running: nothing.");
  out.push(...formatWaiters(report));
  for (const phase of report.phases) out.push("", ...describePhase(phase));
  out.push("", "Latest attempts:");
  out.push(
    table(
      ["RELEASE", "TASK", "ATTEMPT", "APP", "ROLE", "STATUS", "EXIT", "STARTED", "DURATION", "WAITERS"],
      report.latest.map((a) => {
        const c = cells(a);
        return [
          c.release,
          c.task,
          c.id,
          c.app,
          c.role,
          c.status,
          c.exit,
          c.started,
          c.duration,
          String(a.followers.length),
        ];
      }),
    ),
  );
  for (const a of report.latest)
    if (a.status !== "running" && a.tries.length > 0) {
      const last = a.tries[a.tries.length - 1] as LockTry;
      out.push(
        `Attempt #${a.id}: the lock guard cancelled ${a.tries.length} ${a.tries.length === 1 ? "try" : "tries"}; the last, ${describeTry(last)}.`,
      );
    }
  return out.join("\n");
}

/** Who waits now, for whom and since when; and the waiters that stopped beating (gone). */
function formatWaiters(report: StatusReport): string[] {
  if (report.waiters.length === 0) return ["Waiting: nobody."];
  const live = report.waiters.filter((w) => w.outcome === "waiting").length;
  const gone = report.waiters.length - live;
  const lines = [
    `Waiting: ${live === 1 ? "1 process" : `${live} processes`}${gone === 0 ? "" : ` (and ${gone} gone)`}.`,
  ];
  for (const w of report.waiters) {
    const who = `${w.app} (${w.role}${w.role === "leader" ? "" : `, ${w.mode} mode`}, pid ${w.pid} on ${w.host})`;
    const forWhat = `${w.attemptId === null ? "a leader" : `attempt #${w.attemptId}`} of ${w.task} for ${w.releaseId ?? "(unversioned)"}`;
    const start = w.startedAt === null ? "" : ` since ${time(w.startedAt)}`;
    lines.push(
      w.outcome === "waiting"
        ? `  ${who} waits for ${forWhat}${start} (${formatDuration(w.waitedMs)}).`
        : `  ${who} is gone: no heartbeat since ${time(w.recordedAt)} (${ago(report.now, w.recordedAt)} ago), after waiting ${formatDuration(w.waitedMs)} for ${forWhat}; it was killed or lost its database connection.`,
    );
  }
  return lines;
}
