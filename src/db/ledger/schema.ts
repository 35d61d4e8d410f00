// The ledger's lifecycle in a database: one read of whether it is there, ours, usable and writable
// (shared by the run, status, doctor and the leaked-lock check), and `ensure`, which creates or
// upgrades it in one transaction that a transaction-level advisory lock makes exclusive.

import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { UnsafeSetupError, UsageError } from "../../core/errors.js";
import type { LockKey } from "../../core/lock-key.js";
import {
  createStatements,
  finishStatements,
  LEDGER_VERSION,
  MARKER_PATTERN,
  completeStatements,
} from "./create.js";
import type { Ledger } from "./sql.js";
import { upgradeFromV1Statements } from "./upgrade.js";

const INSUFFICIENT_PRIVILEGE = "42501";

/** What this database says of the ledger's schema, read from the catalogs (never an ERROR in the log). */
export interface LedgerPresence {
  schemaExists: boolean;
  /** Whether this user may use the schema; null when it does not exist. */
  usable: boolean | null;
  /** Whether this user may create a schema in this database. */
  canCreate: boolean;
  /** "missing" (no attempts table), a version of ours, or "foreign" (an attempts table that is not ours). */
  version: "missing" | number | "foreign";
  /** A standby or a read-only session: nothing can be recorded. */
  readOnly: boolean;
  /**
   * Whether it holds what this version adds to version 2 without changing it (attempts.tries, the
   * plans table: create.ts completeStatements); a ledger 0.2.0 created lacks them until a run adds them.
   */
  complete: boolean;
}

/** True when the ledger's tables can be read: they exist and this user may use the schema. */
export function isReadable(presence: LedgerPresence): boolean {
  return presence.usable === true && presence.version !== "missing";
}

export async function readPresence(client: pg.Client, ledger: Ledger): Promise<LedgerPresence> {
  // Catalog lookups only: to_regclass would raise an error for a schema this user may not use.
  const result = await client.query<{
    schema_exists: boolean;
    usable: boolean | null;
    can_create: boolean;
    comment: string | null;
    attempts: boolean;
    meta: boolean;
    read_only: boolean;
    complete: boolean;
  }>(
    `SELECT n.oid IS NOT NULL AS schema_exists, has_schema_privilege(n.oid, 'USAGE') AS usable,
            has_database_privilege(current_user, current_database(), 'CREATE') AS can_create,
            (SELECT obj_description(c.oid, 'pg_class') FROM pg_class c
              WHERE c.relnamespace = n.oid AND c.relname = 'attempts') AS comment,
            EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'attempts') AS attempts,
            EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'meta') AS meta,
            pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only,
            EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'plans')
              AND EXISTS (SELECT 1 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                           WHERE c.relnamespace = n.oid AND c.relname = 'attempts' AND a.attname = 'tries'
                             AND NOT a.attisdropped) AS complete
       FROM (SELECT $1::text AS name) q LEFT JOIN pg_namespace n ON n.nspname = q.name`,
    [ledger.schema],
  );
  const row = result.rows[0];
  const presence: LedgerPresence = {
    schemaExists: row?.schema_exists === true,
    usable: row?.usable ?? null,
    canCreate: row?.can_create === true,
    version: "missing",
    readOnly: row?.read_only === true,
    complete: row?.complete === true,
  };
  if (row === undefined || !row.attempts) return presence;
  const marked = MARKER_PATTERN.exec(row.comment ?? "")?.[1];
  if (marked !== undefined) return { ...presence, version: Number(marked) };
  if (!row.meta || row.usable !== true) return { ...presence, version: "foreign" };
  // 0.1.0 kept its version in the meta table and set no comment.
  const meta = await client.query<{ value: string }>(
    `SELECT value FROM ${ledger.table("meta")} WHERE key = 'ledger_version'`,
  );
  return { ...presence, version: meta.rows[0]?.value === "1" ? 1 : "foreign" };
}

/** The ledger's version in this database, refusing a read-only server or a schema this user may not use. */
export async function readVersion(client: pg.Client, ledger: Ledger): Promise<LedgerPresence["version"]> {
  return (await readUsable(client, ledger)).version;
}

/** What this database says of the ledger, refusing a read-only server or a schema this user may not use. */
async function readUsable(client: pg.Client, ledger: Ledger): Promise<LedgerPresence> {
  const presence = await readPresence(client, ledger);
  if (presence.readOnly) {
    throw new UnsafeSetupError(
      "The database URL points at a read-only server (a standby or a read-only session), where no attempt can be recorded; point DATABASE_URL or RELEASE_DATABASE_URL at the primary.",
    );
  }
  if (presence.usable === false) {
    throw new UsageError(
      `The database user may not use the ledger schema ${ledger.schema}; grant it once as an owner (GRANT USAGE, CREATE ON SCHEMA ${ledger.schema} TO <app user>, and privileges on its tables), or pass --schema with another name.`,
    );
  }
  return presence;
}

/**
 * Makes the ledger ready: creates it, upgrades a 0.1.0 one, or adds what this version records to a
 * 0.2.0 one (completeStatements), in one transaction that a
 * transaction-level advisory lock makes exclusive (it works through a pooler). Never raises an
 * ERROR in the server log in normal operation: existence is read, not tried.
 */
export async function ensureLedger(client: pg.Client, ledger: Ledger, signal?: AbortSignal): Promise<void> {
  for (let round = 0; ; round++) {
    const presence = await readUsable(client, ledger);
    const { version } = presence;
    if (version === LEDGER_VERSION && presence.complete) return;
    if (version === "foreign" || (typeof version === "number" && version > LEDGER_VERSION)) {
      throw new UnsafeSetupError(
        version === "foreign"
          ? `The schema ${ledger.schema} holds an attempts table that is not a release-orchestrator ledger; pass --schema with another name (RELEASE_SCHEMA), or drop that table if it is left over.`
          : `The ledger in schema ${ledger.schema} is version ${version}, newer than this release-orchestrator understands (${LEDGER_VERSION}); upgrade release-orchestrator on every app.`,
      );
    }
    if (await migrate(client, ledger, presence)) return;
    if (signal?.aborted) throw new Error("interrupted while another process created the ledger");
    await sleep(Math.min(500, 20 * 2 ** round));
  }
}

/** The DDL lock's key: next to the run lock's, in the same two-int4 space. */
function ddlKey(key: LockKey): number {
  return (key.key ^ 0x5a5a5a5a) & 0x7fffffff;
}

type Steps = { statements: string[]; finish: { text: string; values?: unknown[] }[] };

/** What makes this ledger current: undefined when there is nothing this process may do. */
function stepsFrom(presence: LedgerPresence, ledger: Ledger): Steps | undefined {
  const { version } = presence;
  if (version === "missing")
    return { statements: createStatements(ledger), finish: finishStatements(ledger) };
  if (version === 1) return { statements: upgradeFromV1Statements(ledger), finish: finishStatements(ledger) };
  if (version === LEDGER_VERSION && !presence.complete)
    return { statements: completeStatements(ledger), finish: [] };
  return undefined;
}

/** Creates or upgrades the ledger if this process gets the DDL lock; false when another one has it. */
async function migrate(client: pg.Client, ledger: Ledger, presence: LedgerPresence): Promise<boolean> {
  try {
    await client.query("BEGIN");
    const got = await client.query<{ got: boolean }>("SELECT pg_try_advisory_xact_lock($1, $2) AS got", [
      ledger.key.namespace,
      ddlKey(ledger.key),
    ]);
    // Another process may have finished while we asked for the lock: read again inside it.
    const now = got.rows[0]?.got === true ? await readUsable(client, ledger) : undefined;
    const steps = now === undefined ? undefined : stepsFrom(now, ledger);
    if (steps === undefined) {
      // Not ours to do (another process has the lock, or it is done, foreign or newer): COMMIT keeps
      // rollbacks for real errors; ensureLedger reads again and says what it found.
      await client.query("COMMIT");
      return now?.version === LEDGER_VERSION && now.complete;
    }
    for (const text of steps.statements) await client.query(text);
    for (const statement of steps.finish) await client.query(statement.text, statement.values);
    await client.query("COMMIT");
    return true;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    if ((error as { code?: string }).code === INSUFFICIENT_PRIVILEGE) {
      if (presence.version === LEDGER_VERSION)
        throw new UsageError(
          `The database user may not add what this version records to the ledger in schema ${ledger.schema} (the column attempts.tries and the table plans); run release-orchestrator once as the ledger's owner, or grant this user ownership of its tables and CREATE on the schema.`,
        );
      throw new UsageError(
        `The database user may not create the ledger schema ${ledger.schema}; create it once as an owner (CREATE SCHEMA ${ledger.schema} AUTHORIZATION <app user>) or grant CREATE on the database.`,
      );
    }
    throw error;
  }
}
