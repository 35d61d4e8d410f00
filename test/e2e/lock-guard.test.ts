// The lock-queue guard (issue 20): the app holds a transaction open on `items` while its other sessions
// query `items`; the release's ALTER TABLE waits for its lock behind that transaction, and every app
// query would queue behind the ALTER. The leader cancels the ALTER, keeps its lease, and runs the
// command again; followers keep waiting. A statement nobody queues behind is never cancelled.
//
// Real processes: the built CLI, psql as the migrator (--single-transaction -v ON_ERROR_STOP=1, so a
// cancelled try rolls back whole), pg sessions for the app; directly and through PgBouncer.

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { deriveLockKey } from "../../src/core/lock-key.js";
import { readMetricsSnapshot } from "../../src/db/ledger/reads.js";
import { ledgerOf } from "../../src/db/ledger/sql.js";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { startBouncer, type Bouncer } from "../support/pgbouncer.js";
import { ROOT, scratchDir, startCli, type CliRun, type StartedCli } from "../support/cli.js";
import { findTool, requireTool } from "../support/tools.js";
import { WAITING, waitFor, waitForStderr } from "../support/wait.js";
import { appEnv, djangoProject } from "./platform-support.js";

requireTool("psql");
const freshDb = useFreshDatabases("lock-guard");
const GUARD = ["--lock-wait", "1s", "--lock-retry-wait", "1s"];

/** The migration in psql: one column and one row in `runs`, in one transaction that stops at the first error. */
const MIGRATION =
  'psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -c "ALTER TABLE items ADD COLUMN c int" -c "INSERT INTO runs DEFAULT VALUES"';

/** A migrator of a recipe: the command, where it runs, and how many times it recorded the migration. */
interface Migrator {
  name: string;
  command: string[];
  /** The command through a transaction pooler, where it differs. */
  pooled?: string[];
  cwd?: string;
  path?: string;
  /** How many times the migrator's own table records the migration (psql keeps none: the row in `runs`). */
  recorded(db: TestDatabase): Promise<number>;
}

const count = async (db: TestDatabase, sql: string) => (await db.query<{ n: number }>(sql))[0]?.n ?? -1;

const PSQL: Migrator = {
  name: "psql --single-transaction",
  command: ["sh", "-c", MIGRATION],
  recorded: (db) => count(db, "SELECT count(*)::int AS n FROM runs"),
};

const NPM_BIN = join(ROOT, "node_modules/node-pg-migrate/bin/node-pg-migrate.js");

function nodePgMigrate(): Migrator {
  const dir = scratchDir();
  writeFileSync(join(dir, "package.json"), '{ "type": "commonjs" }\n');
  mkdirSync(join(dir, "migrations"));
  writeFileSync(
    join(dir, "migrations", "1700000000000_add-c.js"),
    `exports.up = (pgm) => { pgm.addColumn("items", { c: "integer" }); pgm.sql("INSERT INTO runs DEFAULT VALUES"); };
exports.down = () => {};
`,
  );
  return {
    name: "node-pg-migrate",
    command: [
      process.execPath,
      join(ROOT, "node_modules/node-pg-migrate/bin/node-pg-migrate.js"),
      "up",
      "-m",
      "migrations",
    ],
    // Its own lock is a session-level advisory lock: through a transaction pooler, the unlock after a
    // cancelled try reaches another backend and the lock stays behind (docs/recipes.md: --no-lock).
    pooled: [process.execPath, NPM_BIN, "up", "--no-lock", "-m", "migrations"],
    cwd: dir,
    recorded: (db) =>
      count(db, "SELECT count(*)::int AS n FROM pgmigrations WHERE name = '1700000000000_add-c'"),
  };
}

function django(python: string): Migrator {
  const project = djangoProject(python);
  const migrations = join(project.dir, "shop", "migrations");
  for (const file of ["0001_initial.py", "0002_backfill.py"]) rmSync(join(migrations, file));
  writeFileSync(join(project.dir, "shop", "models.py"), "");
  writeFileSync(
    join(migrations, "0001_add_c.py"),
    `from django.db import migrations
class Migration(migrations.Migration):
    operations = [migrations.RunSQL("ALTER TABLE items ADD COLUMN c int"), migrations.RunSQL("INSERT INTO runs DEFAULT VALUES")]
`,
  );
  return {
    name: "Django",
    command: ["python", "manage.py", "migrate", "--noinput"],
    cwd: project.dir,
    path: project.path,
    recorded: (db) => count(db, "SELECT count(*)::int AS n FROM django_migrations WHERE app = 'shop'"),
  };
}

/** The migrators on this machine: psql always (the file needs it), Django when Debian's python3-django is there. */
function migrators(): Migrator[] {
  const python = findTool("django").path;
  return [PSQL, nodePgMigrate(), ...(python === undefined ? [] : [django(python)])];
}

const sessions: pg.Client[] = [];
const bouncers: Bouncer[] = [];
afterEach(async () => {
  for (const client of sessions.splice(0)) await client.end().catch(() => {});
  for (const bouncer of bouncers.splice(0)) bouncer.stop();
});

async function ready(label: string): Promise<TestDatabase> {
  const db = await freshDb(label);
  await db.query("CREATE TABLE items (id serial PRIMARY KEY, name text)");
  await db.query("INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 10) g");
  await db.query("CREATE TABLE runs (id serial PRIMARY KEY)");
  return db;
}

async function session(db: TestDatabase, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url, application_name: applicationName });
  await client.connect();
  sessions.push(client);
  return client;
}

/** The app's forgotten transaction: it has read `items` and sits idle in transaction. */
async function blocker(db: TestDatabase): Promise<{ pid: number; release(): Promise<void> }> {
  const client = await session(db, "web.1");
  await client.query("BEGIN");
  await client.query("SELECT count(*) FROM items");
  const [{ pid }] = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows as [
    { pid: number },
  ];
  return { pid, release: async () => void (await client.query("COMMIT")) };
}

/** The app's traffic: a query on `items` every 100 ms; counts the queries that completed. */
async function traffic(db: TestDatabase): Promise<{ completed(): number; stop(): Promise<void> }> {
  const client = await session(db, "web.2");
  let completed = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await client.query("SELECT count(*) FROM items");
      completed++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    completed: () => completed,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

function release(
  url: string,
  app: string,
  releaseId: string,
  extra: string[] = [],
  migrator = PSQL,
): StartedCli {
  return startCli(["run", "--release-id", releaseId, ...GUARD, ...extra, "--", ...migrator.command], {
    env: appEnv({
      DATABASE_URL: url,
      RELEASE_APP_NAME: app,
      ...(migrator.path === undefined ? {} : { PATH: migrator.path }),
    }),
    cwd: migrator.cwd,
    timeoutMs: 90_000,
  });
}

interface AttemptRow {
  status: string;
  exit_code: number | null;
  finished_at: Date | null;
  tries: {
    try: number;
    of: number;
    pid: number;
    relation: string;
    queued: number;
    blocker: { pid: number; applicationName: string; state: string };
  }[];
}

const attempts = (db: TestDatabase) =>
  db.query<AttemptRow>(
    "SELECT status, exit_code, finished_at, tries FROM release_orchestrator.attempts ORDER BY id",
  );

/** Until the ledger's running attempt holds at least `n` cancelled tries. */
function cancels(db: TestDatabase, n: number) {
  return waitFor(
    `${n} cancelled tries in the ledger`,
    async () => {
      const rows = await attempts(db).catch(() => []);
      const tries = rows[0]?.tries ?? [];
      return tries.length >= n ? tries : undefined;
    },
    45_000,
  );
}

/** Until a statement of the release's command has waited for a lock for `ms`, by the database clock. */
function waitedFor(db: TestDatabase, what: string, ms: number) {
  return waitFor(`${what} to wait ${ms} ms for its lock`, async () => {
    const rows = await db.query(
      `SELECT 1 FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid
        WHERE NOT l.granted AND s.application_name LIKE 'release-orchestrator attempt%'
          AND l.waitstart <= clock_timestamp() - $1 * interval '1 millisecond'`,
      [ms],
    );
    return rows.length > 0 ? true : undefined;
  });
}

const describeRun = (runs: CliRun[]) => runs.map((r) => r.stderr).join("\n---\n");

async function unblockedRelease(db: TestDatabase, url: string, releaseId: string, migrator: Migrator) {
  const hold = await blocker(db);
  const app = await traffic(db);
  const leader = release(url, "s-app", releaseId, [], migrator);
  const tries = await cancels(db, 1);
  const follower = release(url, "s-admin", releaseId, [], migrator);
  await waitForStderr(follower.process, WAITING);
  await cancels(db, 2);
  // While the app's transaction is still open, the app's queries go on: none is stuck behind the ALTER.
  const before = app.completed();
  await waitFor("app queries to complete while the blocker is still open", () =>
    app.completed() > before + 2 ? true : undefined,
  );
  // Two tries were cancelled, and the follower still waits (no 76 on a cancelled try).
  const followerWaited = follower.process.exitCode === null;
  await hold.release();
  const [lead, follow] = await Promise.all([leader.done, follower.done]);
  await app.stop();
  return { hold, tries, lead, follow, followerWaited };
}

async function expectOneExecution(db: TestDatabase, migrator: Migrator): Promise<void> {
  // The cancelled tries rolled back whole: the column, the row and the migrator's record exist once.
  expect(await db.query("SELECT count(*)::int AS n FROM runs")).toEqual([{ n: 1 }]);
  expect(await migrator.recorded(db)).toBe(1);
  expect(
    await db.query(
      "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'c'",
    ),
  ).toHaveLength(1);
  const [row] = await attempts(db);
  expect(row?.status).toBe("succeeded");
  expect(row?.tries.length).toBeGreaterThanOrEqual(2);
}

describe("the lock-queue guard", () => {
  describe.each(migrators())("with $name as the migrator", (migrator) => {
    it("cancels the ALTER that stalls the app, runs it again once the app's transaction ends; followers wait across tries", async () => {
      const db = await ready("direct");
      const { hold, tries, lead, follow, followerWaited } = await unblockedRelease(
        db,
        db.url,
        "guard-1",
        migrator,
      );
      expect([lead.exitCode, follow.exitCode], describeRun([lead, follow])).toEqual([0, 0]);
      expect(followerWaited, "the follower was still waiting after two cancelled tries").toBe(true);
      await expectOneExecution(db, migrator);
      expect(tries[0]).toMatchObject({
        try: 1,
        of: 5,
        relation: "items",
        blocker: { pid: hold.pid, applicationName: "web.1", state: "idle in transaction" },
      });
      expect(tries[0]?.queued).toBeGreaterThanOrEqual(1);
      expect(lead.stderr).toMatch(/lock guard: .*web\.1.*idle in transaction/);
      expect(lead.stderr).toMatch(/runs again in/);
      const [row] = await attempts(db);
      // The follower's wait ended with the leader's commit, not before.
      expect(follow.exitedAt).toBeGreaterThanOrEqual((row?.finished_at as Date).getTime() - 1000);
    });

    it("works through PgBouncer in transaction mode (the backend found by its application_name)", async () => {
      const db = await ready("pooled");
      const bouncer = await startBouncer(db.url, { poolMode: "transaction", poolSize: 5 });
      bouncers.push(bouncer);
      const pooled = { ...migrator, command: migrator.pooled ?? migrator.command };
      const { lead, follow, followerWaited } = await unblockedRelease(
        db,
        bouncer.url,
        "guard-pooled",
        pooled,
      );
      expect([lead.exitCode, follow.exitCode], describeRun([lead, follow])).toEqual([0, 0]);
      expect(followerWaited).toBe(true);
      await expectOneExecution(db, pooled);
    });
  });

  it("at scale: 3 rounds of 5 contenders through PgBouncer (transaction mode, 3 server connections), a blocker in each: one execution per round, all exit 0", async () => {
    const db = await ready("scale");
    const bouncer = await startBouncer(db.url, { poolMode: "transaction", poolSize: 3 });
    bouncers.push(bouncer);
    for (const round of [1, 2, 3]) {
      const hold = await blocker(db);
      const app = await traffic(db);
      const migrate = {
        ...PSQL,
        command: ["sh", "-c", MIGRATION.replace("ADD COLUMN c int", `ADD COLUMN c${round} int`)],
      };
      const contenders = ["s-app", "s-admin", "s-api", "s-web", "s-jobs"].map((name) =>
        release(bouncer.url, name, `scale-${round}`, [], migrate),
      );
      await waitFor(
        `round ${round}: a cancel`,
        async () => {
          const rows = await db
            .query<{ n: number }>(
              "SELECT coalesce(sum(jsonb_array_length(tries)), 0)::int AS n FROM release_orchestrator.attempts WHERE release_id = $1",
              [`scale-${round}`],
            )
            .catch(() => [{ n: 0 }]);
          return (rows[0]?.n ?? 0) >= 1 ? true : undefined;
        },
        45_000,
      );
      await hold.release();
      const runs = await Promise.all(contenders.map((c) => c.done));
      await app.stop();
      expect(
        runs.map((r) => r.exitCode),
        describeRun(runs),
      ).toEqual([0, 0, 0, 0, 0]);
      expect(await db.query("SELECT count(*)::int AS n FROM runs")).toEqual([{ n: round }]);
      const succeeded = await db.query(
        "SELECT 1 FROM release_orchestrator.attempts WHERE release_id = $1 AND status = 'succeeded'",
        [`scale-${round}`],
      );
      expect(succeeded).toHaveLength(1);
    }
  });

  it("when the app's transaction never ends, gives up after --lock-retries tries: the leader exits 75, followers 76, the ledger says failed", async () => {
    const db = await ready("blocked-out");
    const hold = await blocker(db);
    const app = await traffic(db);
    const leader = release(db.url, "s-app", "guard-2", ["--lock-retries", "2"]);
    await cancels(db, 1);
    const follower = release(db.url, "s-admin", "guard-2", ["--lock-retries", "2"]);
    const [lead, follow] = await Promise.all([leader.done, follower.done]);
    await app.stop();
    expect([lead.exitCode, follow.exitCode], describeRun([lead, follow])).toEqual([75, 76]);
    expect(lead.stderr).toContain(`all 2 tries were cancelled`);
    expect(lead.stderr).toContain(`pg_terminate_backend(${hold.pid})`);
    const [row] = await attempts(db);
    expect(row?.status).toBe("failed");
    expect(row?.tries.map((t) => t.try)).toEqual([1, 2]);
    expect(await db.query("SELECT count(*)::int AS n FROM runs")).toEqual([{ n: 0 }]);
    // /metrics counts the cancels, read by the very statement serve runs.
    const client = new pg.Client({ connectionString: db.url });
    sessions.push(client);
    await client.connect();
    const snapshot = await readMetricsSnapshot(
      client,
      ledgerOf("release_orchestrator", deriveLockKey("release-orchestrator")),
      "release-orchestrator",
    );
    expect(snapshot.lockCancels).toEqual([{ task: "migrate", count: 2 }]);
    await hold.release();
  });

  it("psql without ON_ERROR_STOP goes on after the cancel and exits 0: recorded as it ended, with a warning, not run again", async () => {
    const db = await ready("no-stop");
    const hold = await blocker(db);
    const app = await traffic(db);
    const sloppy = {
      ...PSQL,
      command: ["sh", "-c", MIGRATION.replace(" --single-transaction -v ON_ERROR_STOP=1", "")],
    };
    const leader = release(db.url, "s-app", "guard-5", [], sloppy);
    const lead = await leader.done;
    await app.stop();
    await hold.release();
    expect(lead.exitCode, lead.stderr).toBe(0);
    expect(lead.stderr).toMatch(/exited 0 although one of its statements was cancelled/);
    const [row] = await attempts(db);
    expect(row?.status).toBe("succeeded");
    expect(row?.tries).toHaveLength(1);
    // The INSERT ran, the ALTER did not: what the warning says to check.
    expect(await db.query("SELECT count(*)::int AS n FROM runs")).toEqual([{ n: 1 }]);
    expect(
      await db.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'c'",
      ),
    ).toHaveLength(0);
  });

  it("never cancels a statement nobody queues behind: a lone ALTER waiting, a CREATE INDEX CONCURRENTLY waiting for an old snapshot", async () => {
    const db = await ready("lone");
    const hold = await blocker(db);
    // Nobody else queries `items`: the ALTER waits alone.
    const leader = release(db.url, "s-app", "guard-3");
    // Three times --lock-wait, by the database clock: the guard looked a dozen times past --lock-wait.
    await waitedFor(db, "the lone ALTER", 3000);
    expect((await attempts(db))[0]?.tries).toEqual([]);
    await hold.release();
    const lead = await leader.done;
    expect(lead.exitCode, lead.stderr).toBe(0);
    expect((await attempts(db))[0]?.tries).toEqual([]);

    // CREATE INDEX CONCURRENTLY waits for a transaction with an old snapshot while the app queries go on.
    const snapshot = await session(db, "report.1");
    await snapshot.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    await snapshot.query("SELECT count(*) FROM items");
    const app = await traffic(db);
    const index = startCli(
      [
        "run",
        "--release-id",
        "guard-4",
        ...GUARD,
        "--",
        "sh",
        "-c",
        'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "CREATE INDEX CONCURRENTLY items_name ON items (name)"',
      ],
      { env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" }, timeoutMs: 90_000 },
    );
    await waitedFor(db, "the CREATE INDEX CONCURRENTLY", 0);
    const before = app.completed();
    await waitedFor(db, "the CREATE INDEX CONCURRENTLY", 3000);
    expect(app.completed(), "the app's queries went on while the index waited").toBeGreaterThan(before);
    await snapshot.query("COMMIT");
    const built = await index.done;
    await app.stop();
    expect(built.exitCode, built.stderr).toBe(0);
    const rows = await attempts(db);
    expect(rows.map((r) => r.tries)).toEqual([[], []]);
    expect(await db.query("SELECT indexname FROM pg_indexes WHERE indexname = 'items_name'")).toHaveLength(1);
  });
});
