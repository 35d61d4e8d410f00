// Per-test databases on the server provided by the e2e globalSetup (see global-setup.ts).
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeAll, inject, type RunnerTask } from "vitest";
import { redactUrl } from "./postgres.js";

export interface TestDatabase {
  name: string;
  /** Same server as the admin URL, this database (includes the password). */
  url: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Closes the pool, terminates other sessions on the database and drops it. Idempotent. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /** Server to create the database on; default: `inject("pgAdminUrl")` from the e2e globalSetup. */
  adminUrl?: string;
}

const MAX_IDENTIFIER_LENGTH = 63;
/** Closes a database's pool without dropping it (used when a database is kept for post-mortem). */
const closers = new WeakMap<TestDatabase, () => Promise<void>>();

/** Lower-case, [a-z0-9_] only, starts with a letter, at most 63 characters including "_<8 hex>". */
export function testDatabaseName(label: string): string {
  const suffix = `_${randomBytes(4).toString("hex")}`;
  let base = label
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/_+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(base)) base = `db_${base}`.replace(/_+$/, "");
  return `${base.slice(0, MAX_IDENTIFIER_LENGTH - suffix.length).replace(/_+$/, "")}${suffix}`;
}

function resolveAdminUrl(options: CreateTestDatabaseOptions | undefined): string {
  if (options?.adminUrl !== undefined) return options.adminUrl;
  let url: string | undefined;
  try {
    url = inject("pgAdminUrl");
  } catch {
    url = undefined;
  }
  if (typeof url !== "string" || url === "") {
    throw new Error(
      "no PostgreSQL server was provided: run this test in the vitest project 'e2e' (its globalSetup starts one) or pass { adminUrl }",
    );
  }
  return url;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function withAdminClient<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates a fresh database named from the label (sanitised, lower-case, + random suffix, max 63 chars). */
export async function createTestDatabase(
  label: string,
  options?: CreateTestDatabaseOptions,
): Promise<TestDatabase> {
  const adminUrl = resolveAdminUrl(options);
  const name = testDatabaseName(label);
  await withAdminClient(adminUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  const url = withDatabase(adminUrl, name);

  let pool: pg.Pool | undefined;
  let closing: Promise<void> | undefined;
  let dropping: Promise<void> | undefined;
  const getPool = (): pg.Pool => {
    if (closing !== undefined) throw new Error(`test database ${name} was already dropped/closed`);
    if (pool === undefined) {
      pool = new pg.Pool({
        connectionString: url,
        max: 4,
        idleTimeoutMillis: 1_000,
        connectionTimeoutMillis: 10_000,
      });
      // Idle clients are killed by DROP ... WITH (FORCE) or by tests terminating backends: not an error here.
      pool.on("error", () => undefined);
    }
    return pool;
  };
  const close = (): Promise<void> =>
    (closing ??= pool !== undefined ? pool.end().catch(() => undefined) : Promise.resolve());

  const db: TestDatabase = {
    name,
    url,
    async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
      const result = await getPool().query(sql, params);
      return result.rows as T[];
    },
    drop() {
      return (dropping ??= (async () => {
        await close();
        await withAdminClient(adminUrl, async (c) => {
          const ident = c.escapeIdentifier(name);
          try {
            await c.query(`DROP DATABASE IF EXISTS ${ident} WITH (FORCE)`);
          } catch (err) {
            if ((err as { code?: unknown }).code !== "42601") throw err;
            // PostgreSQL < 13: no WITH (FORCE).
            await c.query(
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
              [name],
            );
            await c.query(`DROP DATABASE IF EXISTS ${ident}`);
          }
        });
      })());
    },
  };
  closers.set(db, close);
  return db;
}

function anyFailed(tasks: readonly RunnerTask[]): boolean {
  return tasks.some((t) => t.result?.state === "fail" || (t.type === "suite" && anyFailed(t.tasks)));
}

/**
 * For a test file: creates a database in beforeAll and drops it in afterAll, unless a test
 * in the file failed (then it is kept for post-mortem and its name is printed).
 * The returned getter throws if called before beforeAll ran.
 */
export function useTestDatabase(label: string): () => TestDatabase {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(label);
  });
  // vitest 4 requires a destructuring pattern as the first (fixture) argument.
  // eslint-disable-next-line no-empty-pattern
  afterAll(async ({}, suite) => {
    if (db === undefined) return;
    const file = suite.file;
    if (file.result?.state === "fail" || anyFailed(file.tasks)) {
      await closers.get(db)?.();
      process.stderr.write(
        `[pg-harness] keeping database ${db.name} for post-mortem (a test in ${file.name} failed): ${redactUrl(db.url)}` +
          " (a server started by the harness is removed at the end of the run; set TEST_DATABASE_URL to keep it)\n",
      );
      return;
    }
    await db.drop();
  });
  return () => {
    if (db === undefined)
      throw new Error(
        `useTestDatabase(${JSON.stringify(label)}): the database is created in beforeAll; use the getter inside tests/hooks`,
      );
    return db;
  };
}

/**
 * A fresh database per test: `fresh(label)` creates one named `<prefix>-<label>`; after each test the
 * test's databases are dropped, unless it failed (then they are kept for the post-mortem, and named).
 */
export function useFreshDatabases(
  prefix: string,
  options: CreateTestDatabaseOptions | (() => CreateTestDatabaseOptions) = {},
): (label: string) => Promise<TestDatabase> {
  const created: TestDatabase[] = [];
  afterEach(async (context) => {
    const dbs = created.splice(0);
    if (context.task.result?.state === "fail") {
      for (const db of dbs) {
        await closers.get(db)?.();
        process.stderr.write(
          `[pg-harness] keeping database ${db.name} for post-mortem (${context.task.name} failed)\n`,
        );
      }
      return;
    }
    for (const db of dbs) await db.drop().catch(() => {});
  });
  return async (label) => {
    const db = await createTestDatabase(
      `${prefix}-${label}`,
      typeof options === "function" ? options() : options,
    );
    created.push(db);
    return db;
  };
}
