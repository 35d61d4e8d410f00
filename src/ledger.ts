// The ledger: tables that record every attempt and every follower's outcome, and the NOTIFY that
// wakes waiters the moment an outcome is committed. All SQL of the tool lives here.

import type pg from "pg";
import { UsageError } from "./errors.js";
import { quoteIdent } from "./db.js";
import type { AttemptStatus, AttemptView } from "./decide.js";
import type { LockKey } from "./lock-key.js";
import { heldByThisSession } from "./lock.js";

export const LEDGER_VERSION = 1;

/** PostgreSQL error codes the ledger treats specially. */
const UNDEFINED_TABLE = "42P01";
const INVALID_SCHEMA = "3F000";
const INSUFFICIENT_PRIVILEGE = "42501";
const DUPLICATE = new Set(["23505", "42P06", "42P07", "42710"]);

export class Ledger {
  readonly channel: string;
  private readonly s: string;

  constructor(readonly schema: string) {
    this.s = quoteIdent(schema);
    this.channel = schema;
  }

  /** Creates the schema and tables if missing; called while holding the lock. Tolerates a concurrent creator. */
  async ensure(client: pg.Client): Promise<void> {
    const exists = await client.query<{ present: boolean }>(
      "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS present",
      [`${this.s}.attempts`, `${this.s}.follower_outcomes`],
    );
    if (exists.rows[0]?.present === true) return;
    const s = this.s;
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(`
        CREATE TABLE IF NOT EXISTS ${s}.attempts (
          id           bigserial PRIMARY KEY,
          release_id   text,
          task         text NOT NULL,
          lock_name    text NOT NULL,
          app          text NOT NULL,
          host         text NOT NULL,
          pid          integer NOT NULL,
          role         text NOT NULL,
          backend_pid  integer NOT NULL,
          command      text,
          status       text NOT NULL CHECK (status IN ('running','succeeded','failed','interrupted','lost','abandoned')),
          exit_code    integer,
          signal       text,
          started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
          heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
          lease_ms     integer NOT NULL,
          finished_at  timestamptz,
          duration_ms  integer,
          output_tail  text
        )`);
      await client.query(
        `CREATE INDEX IF NOT EXISTS attempts_task_release_idx ON ${s}.attempts (task, release_id, id DESC)`,
      );
      await client.query(`
        CREATE TABLE IF NOT EXISTS ${s}.follower_outcomes (
          id          bigserial PRIMARY KEY,
          release_id  text,
          task        text NOT NULL,
          app         text NOT NULL,
          host        text NOT NULL,
          pid         integer NOT NULL,
          role        text NOT NULL,
          mode        text NOT NULL,
          attempt_id  bigint REFERENCES ${s}.attempts (id),
          outcome     text NOT NULL,
          exit_code   integer NOT NULL,
          waited_ms   integer NOT NULL,
          recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
        )`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.meta (key text PRIMARY KEY, value text NOT NULL)`);
      await client.query(
        `INSERT INTO ${s}.meta (key, value) VALUES ('ledger_version', $1) ON CONFLICT (key) DO NOTHING`,
        [String(LEDGER_VERSION)],
      );
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== undefined && DUPLICATE.has(code)) return this.ensure(client);
      if (code === INSUFFICIENT_PRIVILEGE) {
        throw new UsageError(
          `The database user may not create the ledger schema ${this.schema}; create it once as an owner (CREATE SCHEMA ${this.schema} AUTHORIZATION <app user>) or grant CREATE on the database.`,
        );
      }
      throw error;
    }
  }

  /**
   * Reads the attempt that matters for this release and task (a succeeded one if any, else the latest)
   * in one round trip. A missing ledger reads as no attempt. With `recordIfDone`, the same statement
   * records that outcome as "already-done" when that attempt succeeded: a process that arrives after
   * the release needs one round trip to decide and record.
   */
  async readState(
    client: pg.Client,
    task: string,
    releaseId: string | undefined,
    recordIfDone?: Omit<FollowerOutcome, "releaseId" | "task" | "attemptId" | "outcome" | "exitCode">,
  ): Promise<{ latest: AttemptView | undefined; recordedDone: boolean }> {
    const record = recordIfDone !== undefined && releaseId !== undefined;
    try {
      const result = await client.query<AttemptRow & { recorded: number }>(
        `WITH a AS (
           SELECT id, status, app, pid, host, role, started_at, finished_at, exit_code
             FROM ${this.s}.attempts
            WHERE task = $1 AND release_id IS NOT DISTINCT FROM $2
            ORDER BY (status = 'succeeded') DESC, id DESC
            LIMIT 1),
         recorded AS (
           INSERT INTO ${this.s}.follower_outcomes
                  (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms)
           SELECT $2, $1, $3, $4, $5, $6, $7, a.id, 'already-done', 0, $8 FROM a
            WHERE $9::boolean AND a.status = 'succeeded'
           RETURNING id)
         SELECT a.*, (SELECT count(*)::int FROM recorded) AS recorded FROM (SELECT 1) AS one LEFT JOIN a ON true`,
        [
          task,
          releaseId ?? null,
          recordIfDone?.app ?? "",
          recordIfDone?.host ?? "",
          recordIfDone?.pid ?? 0,
          recordIfDone?.role ?? "",
          recordIfDone?.mode ?? "",
          Math.round(recordIfDone?.waitedMs ?? 0),
          record,
        ],
      );
      const row = result.rows[0];
      if (row === undefined) throw new Error("the ledger query returned no row");
      return { latest: row.id === null ? undefined : toView(row), recordedDone: row.recorded > 0 };
    } catch (error) {
      if (!isMissingLedger(error)) throw error;
      return { latest: undefined, recordedDone: false };
    }
  }

  /** Running attempts of this task, with how long ago they beat and how long their lease lasts. */
  async readRunning(client: pg.Client, task: string, releaseId: string | undefined): Promise<StaleAttempt[]> {
    const result = await client.query<{
      id: string;
      app: string;
      pid: number;
      host: string;
      age_ms: number;
      lease_ms: number;
    }>(
      `SELECT id, app, pid, host, lease_ms,
              (extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::integer AS age_ms
         FROM ${this.s}.attempts
        WHERE task = $1 AND release_id IS NOT DISTINCT FROM $2 AND status = 'running'`,
      [task, releaseId ?? null],
    );
    return result.rows.map((row) => ({
      id: Number(row.id),
      app: row.app,
      pid: row.pid,
      host: row.host,
      heartbeatAgeMs: row.age_ms,
      leaseMs: row.lease_ms,
    }));
  }

  /** Backend pids of sessions that a command of these attempts opened (PGAPPNAME names the attempt). */
  async readAttemptSessions(client: pg.Client, attemptIds: readonly number[]): Promise<number[]> {
    const result = await client.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE application_name = ANY ($1::text[]) AND pid <> pg_backend_pid()`,
      [attemptIds.map(attemptApplicationName)],
    );
    return result.rows.map((row) => row.pid);
  }

  async terminateSessions(client: pg.Client, pids: readonly number[]): Promise<void> {
    await client.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
  }

  /** Marks running attempts of this task that nobody holds the lock for any more; called while holding it. */
  async abandonStale(client: pg.Client, task: string, releaseId: string | undefined): Promise<number[]> {
    const result = await client.query<{ id: string }>(
      `UPDATE ${this.s}.attempts
          SET status = 'abandoned', finished_at = clock_timestamp(),
              duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::integer
        WHERE task = $1 AND release_id IS NOT DISTINCT FROM $2 AND status = 'running'
        RETURNING id`,
      [task, releaseId ?? null],
    );
    return result.rows.map((row) => Number(row.id));
  }

  async startAttempt(client: pg.Client, attempt: NewAttempt): Promise<{ id: number; startedAt: Date }> {
    const result = await client.query<{ id: string; started_at: Date }>(
      `WITH inserted AS (
         INSERT INTO ${this.s}.attempts (release_id, task, lock_name, app, host, pid, role, backend_pid, command, lease_ms, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, pg_backend_pid(), $8, $10, 'running')
         RETURNING id, started_at)
       SELECT id, started_at, pg_notify($9, json_build_object('event', 'started', 'attempt', id, 'task', $2::text, 'release', $1::text)::text)
         FROM inserted`,
      [
        attempt.releaseId ?? null,
        attempt.task,
        attempt.lockName,
        attempt.app,
        attempt.host,
        attempt.pid,
        attempt.role,
        attempt.command,
        this.channel,
        attempt.leaseMs,
      ],
    );
    const row = result.rows[0];
    if (row === undefined) throw new Error("insert returned no row");
    return { id: Number(row.id), startedAt: row.started_at };
  }

  /**
   * Heartbeat: stamps the attempt and checks, in the same statement, that this session still holds
   * the lock. Returns false when it does not (lost, or a pooler moved us to another backend).
   */
  async heartbeat(client: pg.Client, attemptId: number, key: LockKey): Promise<boolean> {
    const result = await client.query<{ held: boolean }>(
      `UPDATE ${this.s}.attempts SET heartbeat_at = clock_timestamp() WHERE id = $1
       RETURNING ${heldByThisSession(2)} AS held`,
      [attemptId, key.namespace, key.key],
    );
    return result.rows[0]?.held === true;
  }

  /** Records the outcome and notifies waiters in one statement, so the NOTIFY is delivered at commit. */
  async finishAttempt(client: pg.Client, attemptId: number, outcome: AttemptOutcome): Promise<void> {
    await client.query(
      `WITH updated AS (
         UPDATE ${this.s}.attempts
            SET status = $2, exit_code = $3, signal = $4, output_tail = $5, finished_at = clock_timestamp(),
                duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::integer
          WHERE id = $1 AND status = 'running'
          RETURNING id, status, task, release_id)
       SELECT pg_notify($6, json_build_object('event', 'finished', 'attempt', id, 'status', status, 'task', task, 'release', release_id)::text)
         FROM updated`,
      [attemptId, outcome.status, outcome.exitCode, outcome.signal, outcome.outputTail, this.channel],
    );
  }

  async recordFollowerOutcome(client: pg.Client, outcome: FollowerOutcome): Promise<void> {
    try {
      await client.query(
        `INSERT INTO ${this.s}.follower_outcomes (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          outcome.releaseId ?? null,
          outcome.task,
          outcome.app,
          outcome.host,
          outcome.pid,
          outcome.role,
          outcome.mode,
          outcome.attemptId ?? null,
          outcome.outcome,
          outcome.exitCode,
          Math.round(outcome.waitedMs),
        ],
      );
    } catch (error) {
      if (!isMissingLedger(error)) throw error;
    }
  }

  /** Wakes waiters after the lock is released (unversioned runs take turns on this). */
  async notifyReleased(client: pg.Client): Promise<void> {
    await client.query("SELECT pg_notify($1, $2)", [this.channel, JSON.stringify({ event: "released" })]);
  }

  async listen(client: pg.Client): Promise<void> {
    await client.query(`LISTEN ${quoteIdent(this.channel)}`);
  }
}

/** The application_name (PGAPPNAME) a command's sessions get, naming its attempt. */
export function attemptApplicationName(attemptId: number): string {
  return `release-orchestrator attempt ${attemptId}`;
}

export function isMissingLedger(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === UNDEFINED_TABLE || code === INVALID_SCHEMA;
}

interface AttemptRow {
  id: string | null;
  status: AttemptStatus;
  app: string;
  pid: number;
  host: string;
  role: string;
  started_at: Date;
  finished_at: Date | null;
  exit_code: number | null;
}

function toView(row: AttemptRow): AttemptView {
  return {
    id: Number(row.id),
    status: row.status,
    app: row.app,
    pid: row.pid,
    host: row.host,
    role: row.role,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    exitCode: row.exit_code,
  };
}

export interface NewAttempt {
  releaseId: string | undefined;
  task: string;
  lockName: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  command: string;
  /** How long after its last heartbeat this attempt's command may still be alive (detection + kill grace). */
  leaseMs: number;
}

export interface StaleAttempt {
  id: number;
  app: string;
  pid: number;
  host: string;
  heartbeatAgeMs: number;
  leaseMs: number;
}

export interface AttemptOutcome {
  status: Exclude<AttemptStatus, "running">;
  exitCode: number | null;
  signal: string | null;
  outputTail: string;
}

export interface FollowerOutcome {
  releaseId: string | undefined;
  task: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  mode: string;
  attemptId: number | undefined;
  outcome: "succeeded" | "already-done" | "failed" | "timeout" | "skipped" | "interrupted";
  exitCode: number;
  waitedMs: number;
}
