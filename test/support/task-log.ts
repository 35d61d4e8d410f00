// The work of the release-tasks tests: each task writes one row to a `log` table (which task, which
// app, which process, when by the database clock at commit), run by psql from a tasks file in an app's
// folder. Shared by release-tasks.test.ts and release-whole.test.ts.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestDatabase } from "../harness/database.js";
import { scratchDir } from "./cli.js";

/** A shell command that logs `task` for $RELEASE_APP_NAME and $PROC, after `before` (more shell). */
export const logTask = (task: string, before = "") =>
  `${before}psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 -c "INSERT INTO log (task, app, proc) VALUES ('${task}', '$RELEASE_APP_NAME', '$PROC')"`;

/** A fresh database with the log table. */
export async function logDatabase(
  freshDb: (label: string) => Promise<TestDatabase>,
  label: string,
): Promise<TestDatabase> {
  const db = await freshDb(label);
  await db.query(
    "CREATE TABLE log (id serial PRIMARY KEY, task text, app text, proc text, at timestamptz DEFAULT clock_timestamp())",
  );
  return db;
}

/** An app's folder holding `text` as its release-tasks.yml. */
export function appWithTasks(text: string): string {
  const dir = scratchDir();
  writeFileSync(join(dir, "release-tasks.yml"), text);
  return dir;
}
