// `history`: attempts, newest first, each with the processes that waited on it, as a table or JSON.

import type pg from "pg";
import { formatDuration } from "../core/duration.js";
import type { AttemptWithFollowers } from "../core/records.js";
import { describePhase, type ReleasePhase } from "../core/release-phase.js";
import { readPhases } from "../db/ledger/plans.js";
import { readAttempts, type HistoryFilter } from "../db/ledger/reads.js";
import type { Config } from "../core/config.js";
import { ledgerFor } from "./client.js";
import { cells, table, time } from "./format.js";

/** Attempts, newest first, with the processes that waited on them (no output tails). */
export function readHistory(
  client: pg.Client,
  config: Pick<Config, "schema" | "lockName">,
  filter: HistoryFilter,
): Promise<AttemptWithFollowers[]> {
  return readAttempts(client, ledgerFor(config), { includeOutput: false, ...filter });
}

/** The releases among these attempts that ran from a tasks file, each as a whole (newest first, at most 5). */
export function readHistoryPhases(
  client: pg.Client,
  config: Pick<Config, "schema" | "lockName">,
  attempts: readonly AttemptWithFollowers[],
): Promise<ReleasePhase[]> {
  const releaseIds = [...new Set(attempts.flatMap((a) => (a.releaseId === null ? [] : [a.releaseId])))];
  if (releaseIds.length === 0) return Promise.resolve([]);
  return readPhases(client, ledgerFor(config), { releaseIds, limit: 5 });
}

/** The attempts' table, then each release that ran from a tasks file as a whole. */
export function formatHistory(
  attempts: AttemptWithFollowers[],
  phases: readonly ReleasePhase[] = [],
): string {
  if (attempts.length === 0) return "No attempts recorded.";
  const wholes = phases.flatMap((phase) => ["", ...describePhase(phase)]);
  return [formatAttempts(attempts), ...wholes].join("\n");
}

function formatAttempts(attempts: AttemptWithFollowers[]): string {
  const rows: string[][] = [];
  for (const a of attempts) {
    const c = cells(a);
    rows.push([c.id, c.release, c.task, c.app, c.role, c.status, c.exit, c.started, c.duration]);
    for (const t of a.tries) {
      rows.push([
        "",
        "",
        "",
        "↳ lock guard",
        `try ${t.try}/${t.of}`,
        "cancelled",
        "-",
        time(t.cancelledAt),
        `waited ${formatDuration(t.waitedMs)}, behind backend ${t.blocker.pid}${t.blocker.applicationName ? ` (${t.blocker.applicationName})` : ""}`,
      ]);
    }
    for (const f of a.followers) {
      rows.push([
        "",
        "",
        "",
        `↳ ${f.app}`,
        f.role,
        f.outcome,
        f.exitCode === null ? "-" : String(f.exitCode),
        time(f.recordedAt),
        `waited ${formatDuration(f.waitedMs)}`,
      ]);
    }
  }
  return table(["ATTEMPT", "RELEASE", "TASK", "APP", "ROLE", "STATUS", "EXIT", "AT", "DURATION"], rows);
}
