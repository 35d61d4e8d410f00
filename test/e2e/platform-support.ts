// Helpers of the platform tests: this repository's release command run for real (its migrations,
// from the repository root), and what the ledger and the migrated data say afterwards.

import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestDatabase } from "../harness/database.js";
import { ROOT, scratchDir } from "../support/cli.js";

/** This repository's migrations, by name, as node-pg-migrate records them. */
export const MIGRATIONS = readdirSync(join(ROOT, "migrations"))
  .filter((name) => /^\d+_.+\.js$/.test(name))
  .map((name) => name.replace(/\.js$/, ""))
  .sort();

/**
 * Environment for a process that runs in the repository root as a deployed app would: no developer
 * `.env` (a slug has none), no dotenv banner, no npm update notice.
 */
export function appEnv(extra: Record<string, string | undefined>): Record<string, string | undefined> {
  const noEnvFile = join(scratchDir(), "no.env");
  writeFileSync(noEnvFile, "");
  return {
    RELEASE_ENV_FILE: noEnvFile,
    DOTENV_CONFIG_QUIET: "true",
    NPM_CONFIG_UPDATE_NOTIFIER: "false",
    NPM_CONFIG_FUND: "false",
    ...extra,
  };
}

export interface LedgerView {
  attempts: { id: number; app: string; status: string }[];
  followers: { app: string; outcome: string; attempt_id: number | null }[];
}

export async function readLedger(db: TestDatabase, releaseId: string): Promise<LedgerView> {
  const attempts = await db.query<{ id: string; app: string; status: string }>(
    "SELECT id, app, status FROM release_orchestrator.attempts WHERE release_id = $1 AND task = 'migrate' ORDER BY id",
    [releaseId],
  );
  const followers = await db.query<{ app: string; outcome: string; attempt_id: string | null }>(
    "SELECT app, outcome, attempt_id FROM release_orchestrator.follower_outcomes WHERE release_id = $1 AND task = 'migrate' ORDER BY id",
    [releaseId],
  );
  return {
    attempts: attempts.map((a) => ({ ...a, id: Number(a.id) })),
    followers: followers.map((f) => ({
      ...f,
      attempt_id: f.attempt_id === null ? null : Number(f.attempt_id),
    })),
  };
}

/** What the migrations left: which ones node-pg-migrate recorded, and how often the backfill ran. */
export async function readMigrated(
  db: TestDatabase,
): Promise<{ applied: string[]; orders: number; backfillEvents: number }> {
  const applied = await db.query<{ name: string }>("SELECT name FROM pgmigrations ORDER BY id");
  const [counts] = await db.query<{ orders: number; events: number }>(
    "SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM order_events WHERE kind = 'status-backfilled') AS events",
  );
  return {
    applied: applied.map((r) => r.name),
    orders: counts?.orders ?? -1,
    backfillEvents: counts?.events ?? -1,
  };
}

// One copy of the helper, shared with the other e2e files.
export { waitForStderr } from "../support/wait.js";
