// The ledger's DDL: a fresh ledger's tables, and the constraints and indexes every ledger ends with,
// whether it was created here or upgraded from 0.1.0 (upgrade.ts). Statements only; schema.ts runs them.

import type { Ledger } from "./sql.js";

/**
 * The ledger's schema version; 0.1.0 wrote version 1 (no constraints, no lock signal). Additions that
 * a version 2 process ignores (a column with a default, a new table) keep the version, so that apps on
 * 0.2.0 and on this version can share one database: completeStatements adds them to a ledger that
 * lacks them.
 */
export const LEDGER_VERSION = 2;
/** The comment on the attempts table that says it is ours, and which version (readable in one statement). */
export const LEDGER_MARKER = `release-orchestrator ledger v${LEDGER_VERSION}`;
/** How a marker reads, for any version. */
export const MARKER_PATTERN = /^release-orchestrator ledger v(\d+)$/;

/** A new ledger's tables, in a schema created if needed. */
export function createStatements(ledger: Ledger): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${ledger.quotedSchema}`,
    `CREATE TABLE ${ledger.table("attempts")} (
       id               bigserial PRIMARY KEY,
       release_id       text,
       task             text NOT NULL,
       lock_name        text NOT NULL,
       app              text NOT NULL,
       host             text NOT NULL,
       pid              integer NOT NULL,
       role             text NOT NULL,
       backend_pid      integer NOT NULL,
       lock_backend_pid integer,
       command          text,
       status           text NOT NULL,
       exit_code        integer,
       signal           text,
       started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
       heartbeat_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
       lease_ms         integer NOT NULL,
       finished_at      timestamptz,
       duration_ms      integer,
       output_tail      text,
       blocked          json
     )`,
    `CREATE INDEX attempts_task_release_idx ON ${ledger.table("attempts")} (task, release_id, id DESC)`,
    `CREATE TABLE ${ledger.table("follower_outcomes")} (
       id           bigserial PRIMARY KEY,
       release_id   text,
       task         text NOT NULL,
       app          text NOT NULL,
       host         text NOT NULL,
       pid          integer NOT NULL,
       role         text NOT NULL,
       mode         text NOT NULL,
       attempt_id   bigint REFERENCES ${ledger.table("attempts")} (id),
       outcome      text NOT NULL,
       exit_code    integer,
       waited_ms    integer NOT NULL,
       recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
       started_at   timestamptz,
       heartbeat_at timestamptz
     )`,
    `CREATE TABLE ${ledger.table("meta")} (key text PRIMARY KEY, value text NOT NULL)`,
    ...completeStatements(ledger),
  ];
}

/**
 * What this version adds to a version 2 ledger that 0.2.0 created, idempotent (IF NOT EXISTS), and
 * ignored by a 0.2.0 process: `attempts.tries` (the lock-queue guard's cancelled tries) and the
 * `plans` table (per release and app, the tasks its tasks file lists, in order, so that status,
 * history, the page, /metrics and the notification show the release as a whole and what is pending;
 * one row per release and app, the last run's file wins).
 */
export function completeStatements(ledger: Ledger): string[] {
  return [
    `ALTER TABLE ${ledger.table("attempts")} ADD COLUMN IF NOT EXISTS tries jsonb NOT NULL DEFAULT '[]'::jsonb`,
    `CREATE TABLE IF NOT EXISTS ${ledger.table("plans")} (
       release_id  text NOT NULL,
       app         text NOT NULL,
       tasks       jsonb NOT NULL,
       host        text NOT NULL,
       pid         integer NOT NULL,
       recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
       PRIMARY KEY (release_id, app)
     )`,
  ];
}

/**
 * What every ledger of this version ends with: the guarantees as constraints (one running attempt per
 * lock; per release and task, one attempt that is running or succeeded, so a success can never be
 * followed by a second run), the index live waiters are read by, the version and the marker.
 */
export function finishStatements(ledger: Ledger): { text: string; values?: unknown[] }[] {
  const attempts = ledger.table("attempts");
  return [
    {
      text: `ALTER TABLE ${attempts} ADD CONSTRAINT attempts_status_check
               CHECK (status IN ('running','succeeded','failed','interrupted','lost','abandoned','duplicate'))`,
    },
    {
      text: `CREATE UNIQUE INDEX attempts_one_running_per_lock ON ${attempts} (lock_name) WHERE status = 'running'`,
    },
    {
      text: `CREATE UNIQUE INDEX attempts_one_live_per_release ON ${attempts} (task, release_id)
               WHERE status IN ('running', 'succeeded')`,
    },
    {
      text: `CREATE INDEX follower_outcomes_waiting_idx ON ${ledger.table("follower_outcomes")} (task)
               WHERE outcome = 'waiting'`,
    },
    {
      text: `INSERT INTO ${ledger.table("meta")} (key, value) VALUES ('ledger_version', $1)
               ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      values: [String(LEDGER_VERSION)],
    },
    { text: `COMMENT ON TABLE ${attempts} IS '${LEDGER_MARKER}'` },
  ];
}
