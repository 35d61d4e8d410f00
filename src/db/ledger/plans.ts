// Plans: per release and app, the tasks its tasks file lists (written by run/tasks.ts before the first
// task), and the release as a whole read back from them and the release's attempts (core/release-phase.ts).
// A ledger without the plans table (0.2.0's, until a run of this version adds it) reads as no plans.

import type pg from "pg";
import type { Attempt } from "../../core/records.js";
import {
  buildPhase,
  type PlannedTask,
  type PlanRecord,
  type ReleasePhase,
} from "../../core/release-phase.js";
import { attemptJson } from "./attempts.js";
import { LEDGER_VERSION } from "./create.js";
import { readPresence } from "./schema.js";
import { utc, type Ledger } from "./sql.js";
import { isMissingLedger } from "./waiters.js";

/** Records (or replaces: the last run's file wins) the tasks this app's file lists for a release. */
export async function recordPlan(
  client: pg.Client,
  ledger: Ledger,
  plan: Omit<PlanRecord, "recordedAt">,
): Promise<void> {
  await client.query(
    `INSERT INTO ${ledger.table("plans")} (release_id, app, tasks, host, pid) VALUES ($1, $2, $3::jsonb, $4, $5)
     ON CONFLICT (release_id, app) DO UPDATE
       SET tasks = excluded.tasks, host = excluded.host, pid = excluded.pid, recorded_at = clock_timestamp()`,
    [plan.releaseId, plan.app, JSON.stringify(plan.tasks.map(plannedOf)), plan.host, plan.pid],
  );
}

/** Only what a plan keeps of a task, in a fixed shape. */
function plannedOf(task: PlannedTask): PlannedTask {
  return {
    name: task.name,
    scope: task.scope,
    ...(task.after !== undefined && task.after.length > 0 ? { after: [...task.after] } : {}),
  };
}

export interface PhaseFilter {
  /** These release ids only; otherwise the newest releases that have a plan. */
  releaseIds?: readonly string[] | undefined;
  /** Most releases to return, newest first; default 5. */
  limit?: number | undefined;
}

/** The releases that have a plan, newest first (by their latest plan), each as a whole. */
export async function readPhases(
  client: pg.Client,
  ledger: Ledger,
  filter: PhaseFilter = {},
): Promise<ReleasePhase[]> {
  const limit = Math.max(1, Math.min(100, filter.limit ?? 5));
  let rows: { release_id: string; plans: PlanRecord[]; attempts: Attempt[] }[];
  try {
    const result = await client.query<{ release_id: string; plans: PlanRecord[]; attempts: Attempt[] }>(
      `WITH releases AS (
         SELECT release_id, max(recorded_at) AS latest FROM ${ledger.table("plans")}
          WHERE $1::text[] IS NULL OR release_id = ANY ($1)
          GROUP BY release_id ORDER BY latest DESC LIMIT $2)
       SELECT r.release_id,
              (SELECT json_agg(json_build_object('releaseId', p.release_id, 'app', p.app, 'tasks', p.tasks,
                        'host', p.host, 'pid', p.pid, 'recordedAt', ${utc("p.recorded_at")}) ORDER BY p.recorded_at)
                 FROM ${ledger.table("plans")} p WHERE p.release_id = r.release_id) AS plans,
              (SELECT coalesce(json_agg(${attemptJson("a", { namespace: "$3", key: "$4" })} ORDER BY a.id), '[]'::json)
                 FROM ${ledger.table("attempts")} a WHERE a.release_id = r.release_id) AS attempts
         FROM releases r ORDER BY r.latest DESC`,
      [
        filter.releaseIds === undefined ? null : [...filter.releaseIds],
        limit,
        ledger.key.namespace,
        ledger.key.key,
      ],
    );
    rows = result.rows;
  } catch (error) {
    if (isMissingLedger(error)) return [];
    throw error;
  }
  return rows.map((row) => buildPhase(row.plans, row.attempts));
}

/**
 * The same, asked of the catalogs first: nothing when the ledger is missing or predates plans (one
 * 0.2.0 created, until a run of this version adds them). Safe inside a read transaction, where a read
 * of a missing table would abort every read after it.
 */
export async function readPhasesIfRecorded(
  client: pg.Client,
  ledger: Ledger,
  filter: PhaseFilter = {},
): Promise<ReleasePhase[]> {
  const presence = await readPresence(client, ledger);
  if (presence.usable !== true || presence.version !== LEDGER_VERSION || !presence.complete) return [];
  return readPhases(client, ledger, filter);
}
