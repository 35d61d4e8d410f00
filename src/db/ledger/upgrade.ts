// The upgrade of a 0.1.0 ledger (version 1) in place: the columns and tables it lacks, then the rows
// that the new constraints would refuse. 0.1.0 could record several running or succeeded attempts: the
// newest running one per lock and the first success per release are kept, the others marked.

import { completeStatements } from "./create.js";
import type { Ledger } from "./sql.js";

export function upgradeFromV1Statements(ledger: Ledger): string[] {
  const attempts = ledger.table("attempts");
  return [
    `ALTER TABLE ${attempts} ADD COLUMN IF NOT EXISTS lock_backend_pid integer`,
    `ALTER TABLE ${attempts} ADD COLUMN IF NOT EXISTS blocked json`,
    `ALTER TABLE ${ledger.table("follower_outcomes")} ALTER COLUMN exit_code DROP NOT NULL,
       ADD COLUMN IF NOT EXISTS started_at timestamptz, ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz`,
    `ALTER TABLE ${attempts} DROP CONSTRAINT IF EXISTS attempts_status_check`,
    `UPDATE ${attempts} a SET status = 'abandoned', finished_at = coalesce(a.finished_at, clock_timestamp())
      WHERE a.status = 'running' AND EXISTS (SELECT 1 FROM ${attempts} b
            WHERE b.status = 'running' AND b.lock_name = a.lock_name AND b.id > a.id)`,
    `UPDATE ${attempts} a SET status = 'duplicate'
      WHERE a.status = 'succeeded' AND EXISTS (SELECT 1 FROM ${attempts} b
            WHERE b.status = 'succeeded' AND b.task = a.task AND b.release_id = a.release_id AND b.id < a.id)`,
    `UPDATE ${attempts} a SET status = 'abandoned', finished_at = coalesce(a.finished_at, clock_timestamp())
      WHERE a.status = 'running' AND EXISTS (SELECT 1 FROM ${attempts} b
            WHERE b.status = 'succeeded' AND b.task = a.task AND b.release_id = a.release_id)`,
    ...completeStatements(ledger),
  ];
}
