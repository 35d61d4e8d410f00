// Post-deploy tasks (`after:` in the tasks file): each app named in `after` records, once per release,
// that it has finished the tasks before the post-deploy one (an arrival: a succeeded attempt of the
// task `<task>:arrived@<app>`, so the one-live-attempt index keeps it once per app and release); the
// app that finds every named app arrived runs the task.

import type pg from "pg";
import { arrivalTask } from "../../core/release-phase.js";
import type { NewAttempt } from "./attempts.js";
import type { Ledger } from "./sql.js";

/** Records this app's arrival (once per release and app: replicas and retries find it there). */
export async function recordArrival(
  client: pg.Client,
  ledger: Ledger,
  a: Pick<NewAttempt, "task" | "lockName" | "app" | "host" | "pid" | "role"> & { releaseId: string },
): Promise<void> {
  await client.query(
    `INSERT INTO ${ledger.table("attempts")}
            (release_id, task, lock_name, app, host, pid, role, backend_pid, command, lease_ms, status,
             exit_code, finished_at, duration_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, pg_backend_pid(), '', 0, 'succeeded', 0, clock_timestamp(), 0)
     ON CONFLICT DO NOTHING`,
    [a.releaseId, arrivalTask(a.task, a.app), a.lockName, a.app, a.host, a.pid, a.role],
  );
}

/** Which of `apps` have arrived before post-deploy task `task` of this release. */
export async function readArrivals(
  client: pg.Client,
  ledger: Ledger,
  releaseId: string,
  task: string,
  apps: readonly string[],
): Promise<string[]> {
  const result = await client.query<{ app: string }>(
    `SELECT DISTINCT app FROM ${ledger.table("attempts")}
      WHERE release_id = $1 AND status = 'succeeded' AND task = ANY ($2::text[])`,
    [releaseId, apps.map((app) => arrivalTask(task, app))],
  );
  const arrived = new Set(result.rows.map((row) => row.app));
  return apps.filter((app) => arrived.has(app));
}
