// `run` end to end: the built CLI in real OS processes racing for a real PostgreSQL.
// The command body (test/fixtures/bump.mjs) writes one row per execution into a counter table.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import {
  BUMP,
  CLI_KINDS,
  runCli,
  scratchDir,
  sleep,
  startCli,
  type CliKind,
  type CliRun,
} from "../support/cli.js";
import { gate, WAITING, waitFor, waitForStderr } from "../support/wait.js";

const freshDb = useFreshDatabases("run");

interface Counter {
  app: string;
  started_at: Date;
  finished_at: Date;
}

const counter = (db: TestDatabase) =>
  db
    .query<Counter>("SELECT app, started_at, finished_at FROM counter ORDER BY id")
    .catch(() => [] as Counter[]);

const attempts = (db: TestDatabase) =>
  db.query<{
    id: string;
    status: string;
    app: string;
    exit_code: number | null;
    finished_at: Date;
    output_tail: string;
  }>(
    "SELECT id, status, app, exit_code, finished_at, output_tail FROM release_orchestrator.attempts ORDER BY id",
  );

function contender(
  cli: CliKind,
  db: TestDatabase,
  app: string,
  args: string[],
  env: Record<string, string> = {},
) {
  return startCli(["run", ...args, "--", process.execPath, BUMP], {
    cli,
    env: { DATABASE_URL: db.url, RELEASE_APP_NAME: app, SLEEP_MS: "1500", ...env },
  });
}

/** Every process that did not run the body exited after the leader committed its outcome. */
async function expectFollowersAfterCommit(db: TestDatabase, runs: CliRun[]) {
  const [attempt] = (await attempts(db)).filter((a) => a.status === "succeeded" || a.status === "failed");
  expect(attempt).toBeDefined();
  const committed = attempt!.finished_at.getTime();
  const leader = attempt!.app;
  for (const run of runs) {
    if (run.stderr.includes(`[release] ${leader}:`)) continue;
    expect(
      run.exitedAt,
      `a follower exited before the leader committed:\n${run.stderr}`,
    ).toBeGreaterThanOrEqual(committed);
  }
  return committed;
}

// The same races for both builds of the tool: node dist/cli.js, and the standalone binary with no node on PATH.
describe.each(CLI_KINDS)("run (%s): one owner per release", (cli) => {
  it.each([2, 10])(
    "%i contenders in auto: the body runs once, all exit 0, none exits before the commit",
    async (n) => {
      const db = await freshDb(`auto-${n}`);
      const started = Array.from({ length: n }, (_, i) =>
        contender(cli, db, `app-${i}`, ["--release-id", "r1"]),
      );
      const runs = await Promise.all(started.map((s) => s.done));
      expect((await counter(db)).length).toBe(1);
      expect(runs.map((r) => r.exitCode)).toEqual(Array(n).fill(0));
      const ran = runs.filter((r) => /running migrate for release r1/.test(r.stderr));
      expect(ran).toHaveLength(1);
      await expectFollowersAfterCommit(db, runs);
      const waited = runs.filter(
        (r) => /succeeded; done after waiting/.test(r.stderr) || /already succeeded/.test(r.stderr),
      );
      expect(waited).toHaveLength(n - 1);
    },
  );

  it("explicit leader and followers: followers started first wait for the leader and exit 0 after its commit", async () => {
    const db = await freshDb("explicit");
    const followers = ["s-admin", "worker", "cron"].map((app) =>
      contender(cli, db, app, ["--release-id", "r2"], { RUN_MIGRATIONS: "false" }),
    );
    await Promise.all(followers.map((f) => waitForStderr(f.process, WAITING)));
    const leader = contender(cli, db, "s-app", ["--release-id", "r2"], { RUN_MIGRATIONS: "true" });
    const runs = await Promise.all([leader, ...followers].map((s) => s.done));
    expect(runs.map((r) => r.exitCode)).toEqual([0, 0, 0, 0]);
    expect((await counter(db)).map((c) => c.app)).toEqual(["s-app"]);
    await expectFollowersAfterCommit(db, runs);
    for (const f of runs.slice(1)) expect(f.stderr).toMatch(/follower; waiting for/);
  });

  it("a follower in skip mode exits 0 at once with a warning, and nothing runs", async () => {
    const db = await freshDb("skip");
    const run = await runCli(["run", "--role", "follower", "--follower-mode", "skip"], {
      cli,
      env: { DATABASE_URL: db.url, RELEASE_ID: "r3", RELEASE_APP_NAME: "s-admin" },
    });
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toMatch(
      /warning: follower in skip mode: not waiting for migrate of release r3; this app's new code may boot before the schema is migrated/,
    );
    expect(await counter(db)).toEqual([]);
  });

  it("the leader's failure: the leader exits with the command's code (3), waiting followers exit 76", async () => {
    const db = await freshDb("fail");
    const followers = ["f1", "f2"].map((app) =>
      contender(cli, db, app, ["--release-id", "r4", "--role", "follower"]),
    );
    const autos = ["a1"].map((app) => contender(cli, db, app, ["--release-id", "r4"], { EXIT_CODE: "3" }));
    // The followers wait; the auto either waits too or, first to the lock, runs.
    await Promise.all([
      ...followers.map((f) => waitForStderr(f.process, WAITING)),
      ...autos.map((a) => waitForStderr(a.process, /; waiting for |; running migrate/)),
    ]);
    const leader = contender(cli, db, "lead", ["--release-id", "r4", "--role", "leader"], { EXIT_CODE: "3" });
    const runs = await Promise.all([leader, ...autos, ...followers].map((s) => s.done));
    // Whoever took the lock first (the auto or the leader) ran and exited 3. If the auto ran first, the
    // explicit leader runs again after it (a leader runs unless the task succeeded), so it exits 3 too.
    const byApp: Record<string, CliRun> = Object.fromEntries(
      runs.map((r): [string, CliRun] => [/\[release\] (\S+):/.exec(r.stderr)?.[1] ?? "?", r]),
    );
    expect(byApp.lead?.exitCode).toBe(3);
    expect(byApp.f1?.exitCode).toBe(76);
    expect(byApp.f2?.exitCode).toBe(76);
    expect([3, 76]).toContain(byApp.a1?.exitCode);
    expect(byApp.f1?.stderr).toMatch(/failed with exit code 3; exiting 76/);
    const failedAttempts = (await attempts(db)).filter((a) => a.status === "failed");
    expect(failedAttempts.length).toBeGreaterThanOrEqual(1);
    expect(failedAttempts.every((a) => a.exit_code === 3)).toBe(true);
    expect(failedAttempts[0]?.output_tail).toMatch(/bump done/);
    await expectFollowersAfterCommit(db, [byApp.f1!, byApp.f2!]);
  });

  it("a follower with no leader times out with 75", async () => {
    const db = await freshDb("timeout");
    const run = await runCli(["run", "--role", "follower", "--wait-timeout", "1500ms"], {
      cli,
      env: { DATABASE_URL: db.url, RELEASE_ID: "r5", RELEASE_APP_NAME: "s-admin" },
    });
    expect(run.exitCode).toBe(75);
    expect(run.stderr).toMatch(
      /timed out after \d+ s waiting for a leader for migrate of release r5; raise --wait-timeout/,
    );
    expect(run.exitedAt - run.startedAt).toBeGreaterThanOrEqual(1500);
  });

  it("a later invocation for a release that succeeded exits 0 without running", async () => {
    const db = await freshDb("later");
    const first = await contender(cli, db, "s-app", ["--release-id", "r6"], { SLEEP_MS: "0" }).done;
    expect(first.exitCode).toBe(0);
    for (const role of ["leader", "auto", "follower"]) {
      const again = await contender(cli, db, "s-admin", ["--release-id", "r6", "--role", role]).done;
      expect(again.exitCode).toBe(0);
      expect(again.stderr).toMatch(
        /migrate already succeeded for release r6 \(attempt #1 by s-app\); nothing to do/,
      );
    }
    expect((await counter(db)).length).toBe(1);
    const outcomes = await db.query<{ outcome: string; role: string }>(
      "SELECT outcome, role FROM release_orchestrator.follower_outcomes ORDER BY id",
    );
    expect(outcomes).toEqual([
      { outcome: "already-done", role: "leader" },
      { outcome: "already-done", role: "auto" },
      { outcome: "already-done", role: "follower" },
    ]);
  });

  it("a new invocation after a failed attempt runs the command again", async () => {
    const db = await freshDb("retry");
    const first = await contender(cli, db, "s-app", ["--release-id", "r7"], { SLEEP_MS: "0", EXIT_CODE: "3" })
      .done;
    expect(first.exitCode).toBe(3);
    const retry = await contender(cli, db, "s-app", ["--release-id", "r7"], { SLEEP_MS: "0" }).done;
    expect(retry.exitCode).toBe(0);
    expect(retry.stderr).toMatch(/running migrate for release r7 \(attempt #2\)/);
    expect((await counter(db)).length).toBe(2);
    expect((await attempts(db)).map((a) => a.status)).toEqual(["failed", "succeeded"]);
  });

  it("unversioned runs are serialised: each runs the command in turn, never two at once", async () => {
    const db = await freshDb("unversioned");
    const cwd = scratchDir();
    const started = ["u1", "u2", "u3"].map((app) =>
      startCli(["run", "--", process.execPath, BUMP], {
        cli,
        cwd,
        env: { DATABASE_URL: db.url, RELEASE_APP_NAME: app, SLEEP_MS: "700" },
      }),
    );
    const runs = await Promise.all(started.map((s) => s.done));
    expect(runs.map((r) => r.exitCode)).toEqual([0, 0, 0]);
    for (const r of runs) expect(r.stderr).toMatch(/No release id found .* this run is unversioned/);
    const rows = await counter(db);
    expect(rows.map((r) => r.app).sort()).toEqual(["u1", "u2", "u3"]);
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]!.started_at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.finished_at.getTime());
    }
  });

  it("a waiting follower without a release id is refused with 64 before connecting", async () => {
    const run = await runCli(["run", "--role", "follower"], {
      cli,
      env: { DATABASE_URL: "postgres://nobody:pw@127.0.0.1:1/none" },
    });
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toMatch(/A waiting follower needs a release id/);
  });

  it("the command's output streams through unchanged and its tail is kept in the ledger", async () => {
    const db = await freshDb("output");
    const run = await runCli(
      ["run", "--release-id", "r8", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 0"],
      { cli, env: { DATABASE_URL: db.url } },
    );
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe("to-stdout\n");
    expect(run.stderr).toContain("to-stderr\n");
    const [row] = await attempts(db);
    // Two pipes: the order between them is the order the bytes arrived, either way round.
    expect(row?.output_tail.split("\n").sort()).toEqual(["", "to-stderr", "to-stdout"]);
  });

  it("names its sessions in pg_stat_activity and gives the command PGAPPNAME naming the attempt", async () => {
    const db = await freshDb("appname");
    const leader = contender(cli, db, "s-app", ["--release-id", "r9"], { SLEEP_MS: "2000" });
    let names: string[] = [];
    for (let i = 0; i < 40 && !names.some((n) => n.includes("attempt")); i++) {
      await sleep(100);
      names = (
        await db.query<{ name: string }>(
          "SELECT application_name AS name FROM pg_stat_activity WHERE datname = current_database()",
        )
      ).map((r) => r.name);
    }
    expect(names).toContain("release-orchestrator s-app auto r9");
    expect(names).toContain("release-orchestrator attempt 1");
    expect((await leader.done).exitCode).toBe(0);
  });
});

describe("run: .env", () => {
  it("reads .env below the real environment and hands its variables to the command", async () => {
    const db = await freshDb("dotenv");
    const cwd = scratchDir();
    writeFileSync(
      join(cwd, ".env"),
      `DATABASE_URL=${db.url}\nRELEASE_ID=from-dotenv\nRELEASE_APP_NAME=dotenv-app\nGREETING=hello-from-dotenv\n`,
    );
    const run = await runCli(["run", "--", "sh", "-c", 'echo "$GREETING"'], {
      cwd,
      env: { RELEASE_APP_NAME: "env-app" },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe("hello-from-dotenv\n");
    expect(run.stderr).toMatch(/\[release\] env-app: auto; running migrate for release from-dotenv/);
  });
});

/** Advisory locks are per database; other test files hold the same key in theirs. */
const THIS_DB = "database = (SELECT oid FROM pg_database WHERE datname = current_database())";

describe("run: the lock key cannot collide with the tools it wraps", () => {
  it("while the orchestrator holds its lock, Prisma's key and a bigint key with the same bits are still free", async () => {
    const db = await freshDb("keys");
    // The command holds until the test has looked (a gate, not a fixed time a loaded machine outlasts).
    const hold = gate();
    const leader = startCli(["run", "--release-id", "k1", "--", ...hold.command], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
    });
    // The lock the running attempt's session holds (the ledger's creation takes a transaction-level
    // advisory lock of the same form for a moment: looking at any such lock caught that one once).
    const { classid, objid } = await waitFor("the running attempt's advisory lock", async () => {
      const rows = await db
        .query<{ classid: string; objid: string }>(
          `SELECT l.classid::text, l.objid::text
             FROM release_orchestrator.attempts a
             JOIN pg_locks l ON l.pid = a.lock_backend_pid
            WHERE a.release_id = 'k1' AND a.status = 'running'
              AND l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l.${THIS_DB}`,
        )
        .catch(() => []);
      return rows.length === 1 ? rows[0] : undefined;
    });
    // A bigint key whose high and low halves equal our two int4 keys: the same bits, another key space.
    const sameBits = (BigInt(classid) << 32n) | BigInt(objid);
    const rows = await db.query<{ prisma: boolean; rails: boolean; same_bits: boolean; ours: boolean }>(
      `SELECT pg_try_advisory_lock(72707369) AS prisma,
              pg_try_advisory_lock(5712389141385240577) AS rails,
              pg_try_advisory_lock($1::bigint) AS same_bits,
              pg_try_advisory_lock($2::int, $3::int) AS ours`,
      [sameBits.toString(), classid, objid],
    );
    expect(rows[0]).toEqual({ prisma: true, rails: true, same_bits: true, ours: false });
    hold.open();
    const done = await leader.done;
    expect(done.exitCode, done.stderr).toBe(0);
  });
});
