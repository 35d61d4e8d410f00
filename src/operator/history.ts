// `history`: attempts, newest first, each with the processes that waited on it, as a table or JSON.

import type pg from "pg";
import { formatDuration } from "../core/duration.js";
import type { AttemptWithFollowers } from "../core/records.js";
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

export function formatHistory(attempts: AttemptWithFollowers[]): string {
  if (attempts.length === 0) return "No attempts recorded.";
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
