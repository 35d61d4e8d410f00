// The ledger: the tables that record every attempt and every follower's outcome, and the authority on
// who owns a task. Ownership is a lease taken and renewed by single autocommit statements (so it works
// through any pooler), decided by the database clock, fenced by the attempt id, and enforced by unique
// indexes: PostgreSQL itself rejects a second running attempt per lock or a second success per release.
// All SQL of the run lives here.

import type pg from "pg";
import { quoteIdent } from "../connect.js";
import type { AttemptStatus, AttemptView } from "../../core/decide.js";
import { UnsafeSetupError, UsageError } from "../../core/errors.js";
import type { Blocked } from "../../core/blocking.js";
import type { LockKey } from "../../core/lock-key.js";

/** The ledger's schema version; 0.1.0 wrote version 1 (no constraints, no lock signal). */
export const LEDGER_VERSION = 2;
/** The comment on the attempts table that says it is ours, and which version (readable in one statement). */
const MARKER = `release-orchestrator ledger v${LEDGER_VERSION}`;

const UNDEFINED_TABLE = "42P01";
const INVALID_SCHEMA = "3F000";
const INSUFFICIENT_PRIVILEGE = "42501";

/** SQL: the lease of an attempt row `a` ends at its last renewal plus its lease length. */
const LEASE_END = "a.heartbeat_at + a.lease_ms * interval '1 millisecond'";

/** SQL for the session advisory lock's row in pg_locks: $ns/$key are parameter numbers. */
function advisoryLock(pid: string, ns: number, key: number): string {
  return `EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = ${pid}
      AND l.classid = $${ns}::bigint::oid AND l.objid = $${key}::bigint::oid AND l.objsubid = 2)`;
}

/** One row of the attempts table, as every reader sees it. */
export interface AttemptRow {
  id: string;
  release_id: string | null;
  task: string;
  lock_name: string;
  app: string;
  host: string;
  pid: number;
  role: string;
  backend_pid: number;
  lock_backend_pid: number | null;
  command: string | null;
  status: AttemptStatus;
  exit_code: number | null;
  signal: string | null;
  started_at: Date;
  heartbeat_at: Date;
  lease_ms: number;
  finished_at: Date | null;
  duration_ms: number | null;
  output_tail: string | null;
}

/** What the run needs of the ledger in one read. */
export interface LedgerState {
  /** For this release and task: a succeeded attempt if any, else the latest. */
  latest: AttemptView | undefined;
  /** The running attempt that owns this lock now, whatever its release. */
  holder: AttemptView | undefined;
  /** True when this read also recorded this process as "already-done". */
  recordedDone: boolean;
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
  /** How long the lease lasts after each renewal. */
  leaseMs: number;
  /** This process's 'waiting' row, ended as 'became-leader' by the same statement when the claim wins. */
  waiterId?: number | undefined;
}

export interface AttemptOutcome {
  status: Exclude<AttemptStatus, "running" | "abandoned" | "duplicate">;
  exitCode: number | null;
  signal: string | null;
  outputTail: string;
}

/** Who a process is, for the ledger's follower outcomes. */
export interface Participant {
  app: string;
  host: string;
  pid: number;
  role: string;
  mode: string;
  waitedMs: number;
}

export interface FollowerOutcome extends Participant {
  releaseId: string | undefined;
  task: string;
  attemptId: number | undefined;
  outcome: "succeeded" | "already-done" | "failed" | "timeout" | "skipped" | "interrupted";
  exitCode: number;
}

/** A renewal's answer: whether the lease is still ours, and whether our lock session still holds the lock. */
export interface Renewal {
  owned: boolean;
  lockHeld: boolean;
  /** What one of the command's sessions has waited on for BLOCKED_AFTER_MS or more, if anything. */
  blocked: Blocked | null;
}

export class Ledger {
  readonly channel: string;
  private readonly s: string;

  constructor(
    readonly schema: string,
    private readonly key: LockKey,
  ) {
    this.s = quoteIdent(schema);
    this.channel = schema;
  }

  /** The ledger's state in this database: missing, ours at a version, or something else. */
  async readVersion(client: pg.Client): Promise<"missing" | number | "foreign"> {
    // Catalog lookups only: to_regclass would raise an error for a schema this user may not use.
    const result = await client.query<{
      usable: boolean | null;
      comment: string | null;
      attempts: boolean;
      meta: boolean;
      read_only: boolean;
    }>(
      `SELECT has_schema_privilege(n.oid, 'USAGE') AS usable,
              (SELECT obj_description(c.oid, 'pg_class') FROM pg_class c
                WHERE c.relnamespace = n.oid AND c.relname = 'attempts') AS comment,
              EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'attempts') AS attempts,
              EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'meta') AS meta,
              pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only
         FROM (SELECT $1::text AS name) q LEFT JOIN pg_namespace n ON n.nspname = q.name`,
      [this.schema],
    );
    const row = result.rows[0];
    if (row?.read_only === true) {
      throw new UnsafeSetupError(
        "The database URL points at a read-only server (a standby or a read-only session), where no attempt can be recorded; point DATABASE_URL or RELEASE_DATABASE_URL at the primary.",
      );
    }
    if (row?.usable === false) {
      throw new UsageError(
        `The database user may not use the ledger schema ${this.schema}; grant it once as an owner (GRANT USAGE, CREATE ON SCHEMA ${this.schema} TO <app user>, and privileges on its tables), or pass --schema with another name.`,
      );
    }
    if (row === undefined || !row.attempts) return "missing";
    const match = /^release-orchestrator ledger v(\d+)$/.exec(row.comment ?? "");
    if (match?.[1] !== undefined) return Number(match[1]);
    if (!row.meta) return "foreign";
    // 0.1.0 kept its version in the meta table and set no comment.
    const meta = await client.query<{ value: string }>(
      `SELECT value FROM ${this.s}.meta WHERE key = 'ledger_version'`,
    );
    return meta.rows[0]?.value === "1" ? 1 : "foreign";
  }

  /**
   * Makes the ledger ready: creates it, or upgrades a 0.1.0 one, in one transaction that a
   * transaction-level advisory lock makes exclusive (it works through a pooler). Never raises an
   * ERROR in the server log in normal operation: existence is read, not tried.
   */
  async ensure(client: pg.Client, signal?: AbortSignal): Promise<void> {
    for (let round = 0; ; round++) {
      const version = await this.readVersion(client);
      if (version === LEDGER_VERSION) return;
      if (version === "foreign" || (typeof version === "number" && version > LEDGER_VERSION)) {
        throw new UnsafeSetupError(
          version === "foreign"
            ? `The schema ${this.schema} holds an attempts table that is not a release-orchestrator ledger; pass --schema with another name (RELEASE_SCHEMA), or drop that table if it is left over.`
            : `The ledger in schema ${this.schema} is version ${version}, newer than this release-orchestrator understands (${LEDGER_VERSION}); upgrade release-orchestrator on every app.`,
        );
      }
      if (await this.migrate(client)) return;
      if (signal?.aborted) throw new Error("interrupted while another process created the ledger");
      await new Promise((resolve) => setTimeout(resolve, Math.min(500, 20 * 2 ** round)));
    }
  }

  /** Creates or upgrades the ledger if this process gets the DDL lock; false when another one has it. */
  private async migrate(client: pg.Client): Promise<boolean> {
    const s = this.s;
    try {
      await client.query("BEGIN");
      const got = await client.query<{ got: boolean }>("SELECT pg_try_advisory_xact_lock($1, $2) AS got", [
        this.key.namespace,
        ddlKey(this.key),
      ]);
      if (got.rows[0]?.got !== true) {
        await client.query("COMMIT"); // nothing done; COMMIT keeps rollbacks for real errors only
        return false;
      }
      // Another process may have finished while we asked for the lock: read again inside it.
      const now = await this.readVersion(client);
      if (now === LEDGER_VERSION) {
        await client.query("COMMIT");
        return true;
      }
      if (now !== "missing" && now !== 1) {
        await client.query("ROLLBACK"); // not ours, or newer: ensure() reads it again and says so
        return false;
      }
      if (now === "missing") {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
        await client.query(`
          CREATE TABLE ${s}.attempts (
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
          )`);
        await client.query(
          `CREATE INDEX attempts_task_release_idx ON ${s}.attempts (task, release_id, id DESC)`,
        );
        await client.query(`
          CREATE TABLE ${s}.follower_outcomes (
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
            exit_code   integer,
            waited_ms   integer NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            started_at  timestamptz,
            heartbeat_at timestamptz
          )`);
        await client.query(`CREATE TABLE ${s}.meta (key text PRIMARY KEY, value text NOT NULL)`);
      } else {
        // From 0.1.0 (version 1): it could record several running or succeeded attempts. Keep the
        // newest running one per lock and the first success per release; mark the others.
        await client.query(`ALTER TABLE ${s}.attempts ADD COLUMN IF NOT EXISTS lock_backend_pid integer`);
        await client.query(`ALTER TABLE ${s}.attempts ADD COLUMN IF NOT EXISTS blocked json`);
        await client.query(
          `ALTER TABLE ${s}.follower_outcomes ALTER COLUMN exit_code DROP NOT NULL,
             ADD COLUMN IF NOT EXISTS started_at timestamptz, ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz`,
        );
        await client.query(`ALTER TABLE ${s}.attempts DROP CONSTRAINT IF EXISTS attempts_status_check`);
        await client.query(
          `UPDATE ${s}.attempts a SET status = 'abandoned', finished_at = coalesce(a.finished_at, clock_timestamp())
            WHERE a.status = 'running' AND EXISTS (SELECT 1 FROM ${s}.attempts b
                  WHERE b.status = 'running' AND b.lock_name = a.lock_name AND b.id > a.id)`,
        );
        await client.query(
          `UPDATE ${s}.attempts a SET status = 'duplicate'
            WHERE a.status = 'succeeded' AND EXISTS (SELECT 1 FROM ${s}.attempts b
                  WHERE b.status = 'succeeded' AND b.task = a.task AND b.release_id = a.release_id AND b.id < a.id)`,
        );
        await client.query(
          `UPDATE ${s}.attempts a SET status = 'abandoned', finished_at = coalesce(a.finished_at, clock_timestamp())
            WHERE a.status = 'running' AND EXISTS (SELECT 1 FROM ${s}.attempts b
                  WHERE b.status = 'succeeded' AND b.task = a.task AND b.release_id = a.release_id)`,
        );
      }
      await client.query(
        `ALTER TABLE ${s}.attempts ADD CONSTRAINT attempts_status_check
           CHECK (status IN ('running','succeeded','failed','interrupted','lost','abandoned','duplicate'))`,
      );
      // The guarantees, as constraints: one running attempt per lock; per release and task, one
      // attempt that is running or succeeded (so a success can never be followed by a second run).
      await client.query(
        `CREATE UNIQUE INDEX attempts_one_running_per_lock ON ${s}.attempts (lock_name) WHERE status = 'running'`,
      );
      await client.query(
        `CREATE UNIQUE INDEX attempts_one_live_per_release ON ${s}.attempts (task, release_id)
          WHERE status IN ('running', 'succeeded')`,
      );
      // Live waiters are the rows still 'waiting': status, the page and /metrics look them up often.
      await client.query(
        `CREATE INDEX follower_outcomes_waiting_idx ON ${s}.follower_outcomes (task) WHERE outcome = 'waiting'`,
      );
      await client.query(
        `INSERT INTO ${s}.meta (key, value) VALUES ('ledger_version', $1)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(LEDGER_VERSION)],
      );
      await client.query(`COMMENT ON TABLE ${s}.attempts IS '${MARKER}'`);
      await client.query("COMMIT");
      return true;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      if ((error as { code?: string }).code === INSUFFICIENT_PRIVILEGE) {
        throw new UsageError(
          `The database user may not create the ledger schema ${this.schema}; create it once as an owner (CREATE SCHEMA ${this.schema} AUTHORIZATION <app user>) or grant CREATE on the database.`,
        );
      }
      throw error;
    }
  }

  /**
   * Reads, in one statement, the attempt that matters for this release and task and the attempt that
   * owns the lock, each with its lease by the database clock. With `recordIfDone`, the same statement
   * records this process as "already-done" when the release already succeeded.
   */
  async readState(
    client: pg.Client,
    q: { task: string; releaseId: string | undefined; lockName: string },
    recordIfDone?: Participant,
  ): Promise<LedgerState> {
    const columns = `a.id, a.status, a.release_id, a.app, a.pid, a.host, a.role, a.started_at, a.finished_at, a.exit_code,
        CASE WHEN a.status = 'running' THEN json_build_object(
          'leftMs', (extract(epoch FROM ${LEASE_END} - clock_timestamp()) * 1000)::bigint,
          'sessionGone', CASE WHEN a.lock_backend_pid IS NULL THEN NULL
                              ELSE NOT ${advisoryLock("a.lock_backend_pid", 4, 5)} END,
          'orphans', CASE WHEN ${LEASE_END} > clock_timestamp() THEN '[]'::json
                          ELSE (${orphanPids("a")}) END) END AS lease`;
    const result = await client.query<{
      latest: JsonAttempt | null;
      holder: JsonAttempt | null;
      recorded: number;
    }>(
      `WITH latest AS (
         SELECT ${columns} FROM ${this.s}.attempts a
          WHERE a.task = $1 AND a.release_id IS NOT DISTINCT FROM $2
          ORDER BY (a.status = 'succeeded') DESC, a.id DESC LIMIT 1),
       holder AS (
         SELECT ${columns} FROM ${this.s}.attempts a WHERE a.lock_name = $3 AND a.status = 'running' LIMIT 1),
       recorded AS (
         INSERT INTO ${this.s}.follower_outcomes
                (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms)
         SELECT $2, $1, $6, $7, $8, $9, $10, latest.id, 'already-done', 0, $11 FROM latest
          WHERE $12::boolean AND $2::text IS NOT NULL AND latest.status = 'succeeded'
         RETURNING id)
       SELECT (SELECT row_to_json(latest) FROM latest) AS latest,
              (SELECT row_to_json(holder) FROM holder) AS holder,
              (SELECT count(*)::int FROM recorded) AS recorded`,
      [
        q.task,
        q.releaseId ?? null,
        q.lockName,
        this.key.namespace,
        this.key.key,
        recordIfDone?.app ?? "",
        recordIfDone?.host ?? "",
        recordIfDone?.pid ?? 0,
        recordIfDone?.role ?? "",
        recordIfDone?.mode ?? "",
        Math.round(recordIfDone?.waitedMs ?? 0),
        recordIfDone !== undefined,
      ],
    );
    const row = result.rows[0];
    return {
      latest: row?.latest ? toView(row.latest) : undefined,
      holder: row?.holder ? toView(row.holder) : undefined,
      recordedDone: (row?.recorded ?? 0) > 0,
    };
  }

  /**
   * Claims the task: inserts a running attempt unless the constraints say another attempt owns the
   * lock or this release already succeeded. One autocommit statement; no ERROR when it loses.
   */
  async claim(client: pg.Client, attempt: NewAttempt): Promise<{ id: number; startedAt: Date } | undefined> {
    const result = await client.query<{ id: string; started_at: Date }>(
      `WITH claimed AS (
         INSERT INTO ${this.s}.attempts
                (release_id, task, lock_name, app, host, pid, role, backend_pid, command, lease_ms, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, pg_backend_pid(), $8, $9, 'running')
         ON CONFLICT DO NOTHING
         RETURNING id, started_at),
       led AS (
         UPDATE ${this.s}.follower_outcomes f
            SET outcome = 'became-leader', exit_code = NULL, attempt_id = claimed.id,
                waited_ms = (extract(epoch FROM clock_timestamp() - f.started_at) * 1000)::integer,
                recorded_at = clock_timestamp(), heartbeat_at = clock_timestamp()
           FROM claimed WHERE f.id = $11)
       SELECT id, started_at,
              pg_notify($10, json_build_object('event', 'started', 'attempt', id, 'task', $2::text, 'release', $1::text)::text)
         FROM claimed`,
      [
        attempt.releaseId ?? null,
        attempt.task,
        attempt.lockName,
        attempt.app,
        attempt.host,
        attempt.pid,
        attempt.role,
        attempt.command,
        attempt.leaseMs,
        this.channel,
        attempt.waiterId ?? null,
      ],
    );
    const row = result.rows[0];
    return row === undefined ? undefined : { id: Number(row.id), startedAt: row.started_at };
  }

  /**
   * On a session proven to be our own, takes the advisory lock and records which backend holds it:
   * the instant signal that this leader's session died. False when the lock is taken (a leak).
   */
  async attachLock(client: pg.Client, attemptId: number): Promise<boolean> {
    const result = await client.query(
      `UPDATE ${this.s}.attempts SET lock_backend_pid = pg_backend_pid()
        WHERE id = $1 AND status = 'running' AND pg_try_advisory_lock($2, $3)
        RETURNING id`,
      [attemptId, this.key.namespace, this.key.key],
    );
    return result.rowCount === 1;
  }

  /**
   * Renews the lease, fenced by the attempt id: only a running attempt whose lease has not expired is
   * renewed (an expired lease may already be taken over). Also says whether the lock session holds.
   */
  async renew(client: pg.Client, attemptId: number): Promise<Renewal> {
    const result = await client.query<{ lock_held: boolean; blocked: Blocked | null }>(
      `UPDATE ${this.s}.attempts a SET heartbeat_at = clock_timestamp(), blocked = (${blockedSql("a")})
        WHERE a.id = $1 AND a.status = 'running' AND ${LEASE_END} > clock_timestamp()
        RETURNING a.lock_backend_pid IS NULL
               OR (a.lock_backend_pid = pg_backend_pid() AND ${advisoryLock("pg_backend_pid()", 2, 3)}) AS lock_held,
               a.blocked`,
      [attemptId, this.key.namespace, this.key.key],
    );
    const row = result.rows[0];
    return { owned: row !== undefined, lockHeld: row?.lock_held === true, blocked: row?.blocked ?? null };
  }

  /** Records the outcome, fenced by the attempt id, and notifies waiters at commit. False if not ours any more. */
  async finish(client: pg.Client, attemptId: number, outcome: AttemptOutcome): Promise<boolean> {
    const result = await client.query(
      `WITH updated AS (
         UPDATE ${this.s}.attempts
            SET status = $2, exit_code = $3, signal = $4, output_tail = $5, finished_at = clock_timestamp(),
                duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::integer
          WHERE id = $1 AND status = 'running'
          RETURNING id, status, task, release_id),
       swept AS (${sweepGoneWaiters(this.s)})
       SELECT pg_notify($6, json_build_object('event', 'finished', 'attempt', id, 'status', status, 'task', task, 'release', release_id)::text)
         FROM updated`,
      [attemptId, outcome.status, outcome.exitCode, outcome.signal, outcome.outputTail, this.channel],
    );
    return result.rowCount === 1;
  }

  /**
   * Takes over a stale attempt: marks it abandoned only if its lease has expired by the database clock
   * and none of its command's sessions is connected, in one statement. False when it was not stale.
   */
  async abandon(client: pg.Client, attemptId: number): Promise<boolean> {
    const result = await client.query(
      `WITH abandoned AS (
         UPDATE ${this.s}.attempts a
            SET status = 'abandoned', finished_at = clock_timestamp(),
                duration_ms = (extract(epoch FROM clock_timestamp() - a.started_at) * 1000)::integer
          WHERE a.id = $1 AND a.status = 'running' AND ${LEASE_END} <= clock_timestamp()
            AND json_array_length((${orphanPids("a")})) = 0
          RETURNING a.id, a.status, a.task, a.release_id)
       SELECT pg_notify($2, json_build_object('event', 'finished', 'attempt', id, 'status', status, 'task', task, 'release', release_id)::text)
         FROM abandoned`,
      [attemptId, this.channel],
    );
    return result.rowCount === 1;
  }

  async terminateSessions(client: pg.Client, pids: readonly number[]): Promise<void> {
    await client.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
  }

  /**
   * Records how a process that did not run the command ended. A process that was waiting ends its
   * own 'waiting' row (`waiterId`); one that never waited gets a new row. One statement either way.
   */
  async recordFollowerOutcome(client: pg.Client, outcome: FollowerOutcome, waiterId?: number): Promise<void> {
    try {
      await client.query(
        `WITH ended AS (
           UPDATE ${this.s}.follower_outcomes
              SET outcome = $9, exit_code = $10, waited_ms = $11, attempt_id = coalesce($8, attempt_id),
                  recorded_at = clock_timestamp(), heartbeat_at = clock_timestamp()
            WHERE id = $12
            RETURNING id)
         INSERT INTO ${this.s}.follower_outcomes (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE NOT EXISTS (SELECT 1 FROM ended)`,
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
          waiterId ?? null,
        ],
      );
    } catch (error) {
      if (!isMissingLedger(error)) throw error;
    }
  }

  /**
   * Records this process as waiting now (for `attemptId`, or for a leader to appear), with a
   * heartbeat; the row is ended by recordFollowerOutcome or claim. Returns the row's id.
   */
  async startWaiting(
    client: pg.Client,
    who: Participant,
    q: { task: string; releaseId: string | undefined; attemptId: number | undefined },
  ): Promise<number> {
    const result = await client.query<{ id: string }>(
      `INSERT INTO ${this.s}.follower_outcomes
              (release_id, task, app, host, pid, role, mode, attempt_id, outcome, exit_code, waited_ms, started_at, heartbeat_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', NULL, 0, clock_timestamp() - $9::integer * interval '1 millisecond', clock_timestamp())
       RETURNING id`,
      [
        q.releaseId ?? null,
        q.task,
        who.app,
        who.host,
        who.pid,
        who.role,
        who.mode,
        q.attemptId ?? null,
        Math.round(who.waitedMs),
      ],
    );
    return Number(result.rows[0]?.id);
  }

  /** A waiter's heartbeat: it still waits, now for `attemptId` if known (a waiter seen as gone comes back). */
  async beatWaiting(client: pg.Client, waiterId: number, attemptId: number | undefined): Promise<void> {
    await client.query(
      `UPDATE ${this.s}.follower_outcomes
          SET heartbeat_at = clock_timestamp(), outcome = 'waiting', attempt_id = coalesce($2, attempt_id)
        WHERE id = $1 AND outcome IN ('waiting', 'gone')`,
      [waiterId, attemptId ?? null],
    );
  }

  /**
   * Whether more than half of max_connections are in use: waiters then give their connection back
   * between polls, so that the leader's command can still connect.
   */
  async isCrowded(client: pg.Client, reporter?: { debug(message: string): void }): Promise<boolean> {
    const result = await client.query<{ used: number; max: number }>(
      "SELECT count(*)::int AS used, current_setting('max_connections')::int AS max FROM pg_stat_activity",
    );
    const row = result.rows[0];
    const crowded = row !== undefined && row.used * 2 > row.max;
    if (crowded) reporter?.debug(`${row.used} of ${row.max} connections in use: waiting without holding one`);
    return crowded;
  }

  async listen(client: pg.Client): Promise<void> {
    await client.query(`LISTEN ${quoteIdent(this.channel)}`);
  }
}

/**
 * SQL: a JSON array of the backend pids of attempt `a`'s command sessions still connected (PGAPPNAME
 * names the attempt), in this database only: attempt ids are per ledger, and another database's
 * attempt 1 is not ours. An idle one counts too: a command that sleeps between statements is alive.
 */
function orphanPids(a: string): string {
  return `SELECT coalesce(json_agg(s.pid), '[]'::json) FROM pg_stat_activity s
           WHERE s.application_name = 'release-orchestrator attempt ' || ${a}.id AND s.pid <> pg_backend_pid()
             AND s.datname = current_database()`;
}

/** A waiter whose heartbeat is older than this is gone (SIGKILLed, or its connection lost). */
export const WAITER_GONE_MS = 10_000;
/** How often a waiter renews its heartbeat (it beats on its polls, at most this often). */
export const WAITER_BEAT_MS = 2_000;
/** A command session waiting on a lock this long is reported as blocked. */
export const BLOCKED_AFTER_MS = 3_000;

/** SQL: whether follower row `f` is a waiter without a heartbeat for WAITER_GONE_MS (by the database clock). */
function isGoneSql(f: string): string {
  return `(${f}.outcome = 'waiting' AND ${f}.heartbeat_at + interval '${WAITER_GONE_MS} milliseconds' <= clock_timestamp())`;
}

/** SQL: a follower row `f`'s outcome as readers see it: a 'waiting' row without a recent heartbeat is 'gone'. */
export function followerOutcomeSql(f: string): string {
  return `CASE WHEN ${isGoneSql(f)} THEN 'gone' ELSE ${f}.outcome END`;
}

/** SQL: when a waiter was last known to wait: now while it beats, its last heartbeat once gone. */
export function followerLastSeenSql(f: string): string {
  return `CASE WHEN ${isGoneSql(f)} THEN ${f}.heartbeat_at ELSE clock_timestamp() END`;
}

/** SQL: how long a follower row `f` waited: for a live waiter until now, for a gone one until its last heartbeat. */
export function followerWaitedSql(f: string): string {
  return `CASE WHEN ${f}.outcome = 'waiting'
               THEN (extract(epoch FROM ${followerLastSeenSql(f)} - ${f}.started_at) * 1000)::integer
               ELSE ${f}.waited_ms END`;
}

/** SQL: marks 'gone' the waiting rows without a recent heartbeat (run when an attempt ends). */
function sweepGoneWaiters(s: string): string {
  return `UPDATE ${s}.follower_outcomes f
             SET outcome = 'gone', recorded_at = f.heartbeat_at,
                 waited_ms = (extract(epoch FROM f.heartbeat_at - f.started_at) * 1000)::integer
           WHERE ${isGoneSql("f")}`;
}

/**
 * SQL: a JSON object (Blocked) when one of attempt `a`'s command sessions has waited on a lock for
 * BLOCKED_AFTER_MS or more, naming the session that blocks it (pg_blocking_pids); else NULL. Of
 * several blockers, the one that is not itself waiting (the head of the queue), oldest transaction first.
 * `waitstart` is read through to_jsonb: PostgreSQL before 14 has no such column (query_start then).
 */
function blockedSql(a: string): string {
  return `SELECT json_build_object(
             'pid', w.pid, 'since', w.since, 'lockType', w.locktype, 'mode', w.mode, 'relation', w.relation,
             'seenAt', clock_timestamp(),
             'blocker', json_build_object('pid', b.pid, 'applicationName', b.application_name, 'state', b.state,
                          'stateSince', b.state_change, 'xactStart', b.xact_start,
                          'waiting', b.wait_event_type IS NOT DISTINCT FROM 'Lock'))
            FROM (SELECT s.pid, l.locktype, l.mode,
                         CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
                         coalesce((to_jsonb(l) ->> 'waitstart')::timestamptz, s.query_start) AS since
                    FROM pg_stat_activity s JOIN pg_locks l ON l.pid = s.pid AND NOT l.granted
                   WHERE s.application_name = 'release-orchestrator attempt ' || ${a}.id
                     AND s.datname = current_database()) w
            CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
            JOIN pg_stat_activity b ON b.pid = bp.pid
           WHERE w.since <= clock_timestamp() - interval '${BLOCKED_AFTER_MS} milliseconds'
           ORDER BY w.since, b.wait_event_type IS NOT DISTINCT FROM 'Lock', b.xact_start NULLS LAST
           LIMIT 1`;
}

/** The DDL lock's key: next to the run lock's, in the same two-int4 space. */
function ddlKey(key: LockKey): number {
  return (key.key ^ 0x5a5a5a5a) & 0x7fffffff;
}

/** The application_name (PGAPPNAME) a command's sessions get, naming its attempt. */
export function attemptApplicationName(attemptId: number): string {
  return `release-orchestrator attempt ${attemptId}`;
}

export function isMissingLedger(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === UNDEFINED_TABLE || code === INVALID_SCHEMA;
}

interface JsonAttempt {
  id: number;
  status: AttemptStatus;
  release_id: string | null;
  app: string;
  pid: number;
  host: string;
  role: string;
  started_at: string;
  finished_at: string | null;
  exit_code: number | null;
  lease: { leftMs: number; sessionGone: boolean | null; orphans: number[] } | null;
}

function toView(row: JsonAttempt): AttemptView {
  const view: AttemptView = {
    id: Number(row.id),
    status: row.status,
    releaseId: row.release_id,
    app: row.app,
    pid: row.pid,
    host: row.host,
    role: row.role,
    startedAt: new Date(row.started_at),
    finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
    exitCode: row.exit_code,
  };
  if (row.lease !== null) {
    view.lease = {
      leftMs: Number(row.lease.leftMs),
      sessionGone: row.lease.sessionGone ?? undefined,
      orphans: row.lease.orphans,
    };
  }
  return view;
}
