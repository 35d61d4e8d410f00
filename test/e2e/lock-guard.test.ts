// The lock-queue guard (issue 20): the app holds a transaction open on `items` while its other sessions
// query `items`; the release's ALTER TABLE waits for its lock behind that transaction, and every app
// query would queue behind the ALTER. The leader cancels the ALTER, keeps its lease, and runs the
// command again; followers keep waiting. A statement nobody queues behind is never cancelled.
//
// Real processes: the built CLI, psql as the migrator (--single-transaction -v ON_ERROR_STOP=1, so a
// cancelled try rolls back whole), pg sessions for the app; directly and through PgBouncer.

import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { startBouncer, type Bouncer } from "../support/pgbouncer.js";
import { startCli, type CliRun, type StartedCli } from "../support/cli.js";
import { requireTool } from "../support/tools.js";
import { WAITING, waitFor, waitForStderr } from "../support/wait.js";

requireTool("psql");
const freshDb = useFreshDatabases("lock-guard");
const GUARD = ["--lock-wait", "1s", "--lock-retry-wait", "1s"];

/** The migration: one column and one row in `runs`, in one transaction that stops at the first error. */
const MIGRATION =
  'psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -c "ALTER TABLE items ADD COLUMN c int" -c "INSERT INTO runs DEFAULT VALUES"';

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

function release(url: string, app: string, releaseId: string, extra: string[] = []): StartedCli {
  return startCli(["run", "--release-id", releaseId, ...GUARD, ...extra, "--", "sh", "-c", MIGRATION], {
    env: { DATABASE_URL: url, RELEASE_APP_NAME: app },
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

const describeRun = (runs: CliRun[]) => runs.map((r) => r.stderr).join("\n---\n");

async function unblockedRelease(db: TestDatabase, url: string, releaseId: string) {
  const hold = await blocker(db);
  const app = await traffic(db);
  const leader = release(url, "s-app", releaseId);
  const tries = await cancels(db, 1);
  const follower = release(url, "s-admin", releaseId);
  await waitForStderr(follower.process, WAITING);
  await cancels(db, 2);
  // While the app's transaction is still open, the app's queries go on: none is stuck behind the ALTER.
  const before = app.completed();
  await waitFor("an app query to complete while the blocker is still open", () =>
    app.completed() > before + 2 ? true : undefined,
  );
  await hold.release();
  const [lead, follow] = await Promise.all([leader.done, follower.done]);
  await app.stop();
  return { hold, tries, lead, follow };
}

describe("the lock-queue guard", () => {
  it("cancels the ALTER that stalls the app, runs it again once the app's transaction ends; followers wait across tries", async () => {
    const db = await ready("direct");
    const { hold, tries, lead, follow } = await unblockedRelease(db, db.url, "guard-1");
    expect([lead.exitCode, follow.exitCode], describeRun([lead, follow])).toEqual([0, 0]);
    // The cancelled tries rolled back whole: the column and the row exist once.
    expect(await db.query("SELECT count(*)::int AS n FROM runs")).toEqual([{ n: 1 }]);
    expect(
      await db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'c'",
      ),
    ).toHaveLength(1);
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
    expect(row?.status).toBe("succeeded");
    expect(row?.tries.length).toBeGreaterThanOrEqual(2);
    // The follower waited for the leader's commit: it did not exit on a cancelled try.
    expect(follow.exitedAt).toBeGreaterThanOrEqual((row?.finished_at as Date).getTime() - 1000);
    expect(follow.stderr).not.toMatch(/exit(ed)? (code )?76/);
  });

  it("works through PgBouncer in transaction mode (the backend found by its application_name)", async () => {
    const db = await ready("pooled");
    const bouncer = await startBouncer(db.url, { poolMode: "transaction", poolSize: 5 });
    bouncers.push(bouncer);
    const { lead, follow } = await unblockedRelease(db, bouncer.url, "guard-pooled");
    expect([lead.exitCode, follow.exitCode], describeRun([lead, follow])).toEqual([0, 0]);
    expect(await db.query("SELECT count(*)::int AS n FROM runs")).toEqual([{ n: 1 }]);
    const [row] = await attempts(db);
    expect(row?.status).toBe("succeeded");
    expect(row?.tries.length).toBeGreaterThanOrEqual(2);
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
    await hold.release();
  });

  it("never cancels a statement nobody queues behind: a lone ALTER waiting, a CREATE INDEX CONCURRENTLY waiting for an old snapshot", async () => {
    const db = await ready("lone");
    const hold = await blocker(db);
    // Nobody else queries `items`: the ALTER waits alone.
    const leader = release(db.url, "s-app", "guard-3");
    await waitFor("the ALTER to wait for its lock", async () => {
      const rows = await db.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'release-orchestrator attempt%' AND wait_event_type = 'Lock'",
      );
      return rows.length > 0 ? true : undefined;
    });
    // Three times --lock-wait, and then some: no cancel.
    await new Promise((resolve) => setTimeout(resolve, 3500));
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
    await waitFor("the CREATE INDEX CONCURRENTLY to wait", async () => {
      const rows = await db.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'release-orchestrator attempt%' AND wait_event_type = 'Lock'",
      );
      return rows.length > 0 ? true : undefined;
    });
    const before = app.completed();
    await new Promise((resolve) => setTimeout(resolve, 3500));
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
