// Faults, with real processes and a real PostgreSQL: a leader killed mid-command, a lock session
// terminated, signals, a CREATE INDEX CONCURRENTLY under waiting followers, bounded memory.
// The command fixtures record when they start and end, so "never two alive at once" is checked on rows.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, inject, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import {
  ROOT,
  cliInvocation,
  defaultCliKind,
  runCli,
  scratchDir,
  startCli,
  type CliRun,
} from "../support/cli.js";
import { WAITING, waitFor, waitForStderr } from "../support/wait.js";

const HOLD = join(ROOT, "test/fixtures/hold.mjs");
const SQL = join(ROOT, "test/fixtures/sql.mjs");
const password = inject("pgPassword");

const freshDb = useFreshDatabases("faults");

interface RunRow {
  app: string;
  attempt: string;
  os_pid: number;
  started_at: Date;
  ended_at: Date | null;
  how: string | null;
}
const runsOf = (db: TestDatabase) =>
  db
    .query<RunRow>("SELECT app, attempt, os_pid, started_at, ended_at, how FROM runs ORDER BY id")
    .catch(() => [] as RunRow[]);
const attemptsOf = (db: TestDatabase) =>
  db.query<{ id: string; status: string; app: string }>(
    "SELECT id, status, app FROM release_orchestrator.attempts ORDER BY id",
  );

const until = waitFor;

/** A file whose creation ends a HOLD_UNTIL command's hold (see test/fixtures/hold.mjs). */
function holdUntil(): { file: string; open(): void } {
  const file = join(scratchDir(), "open");
  return { file, open: () => writeFileSync(file, "") };
}

function hold(db: TestDatabase, app: string, args: string[], env: Record<string, string> = {}) {
  return startCli(["run", "--kill-grace", "1s", ...args, "--", process.execPath, HOLD], {
    env: { DATABASE_URL: db.url, RELEASE_APP_NAME: app, ...env },
  });
}

function expectNoOverlap(rows: RunRow[]) {
  for (let i = 1; i < rows.length; i++) {
    const previous = rows[i - 1]!;
    expect(previous.ended_at, `run ${i} never ended`).not.toBeNull();
    expect(rows[i]!.started_at.getTime(), "two commands were alive at once").toBeGreaterThanOrEqual(
      previous.ended_at!.getTime(),
    );
  }
}

/** A process that exists and is not a zombie (an orphan's zombie waits for a reaper that may never come). */
function isAlive(pid: number): boolean {
  try {
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return state !== undefined && state !== "Z";
  } catch {
    return false;
  }
}

/** Whether any process of the group led by `pid` is left (the command runs as a process group's leader). */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The parent of a process: for the command, its supervisor. */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ")".
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

function expectNoSecret(...runs: CliRun[]) {
  for (const run of runs) expect(`${run.stdout}${run.stderr}`).not.toContain(password);
}

describe("faults", () => {
  it("leader killed (SIGKILL) mid-command: its command's group goes with it, and an auto waiter takes over only after the old command ended", async () => {
    const db = await freshDb("sigkill-auto");
    // a's command would run until its gate opens, which never happens: only a's death can end it.
    const gateNeverOpened = holdUntil();
    const a = hold(db, "a", ["--release-id", "k1"], { HOLD_UNTIL: gateNeverOpened.file, SLEEP_MS: "200" });
    await until("a's command to start", async () => ((await runsOf(db)).length > 0 ? true : undefined));
    const b = hold(db, "b", ["--release-id", "k1"], { SLEEP_MS: "200" });
    await waitForStderr(b.process, WAITING);
    const command = (await runsOf(db))[0]!.os_pid;
    a.process.kill("SIGKILL");
    // The command is ended by its supervisor as soon as the orchestrator is gone: no process of its
    // group is left, long before a's lease (7.5 s with --kill-grace 1s) could let anyone take over.
    await until(
      "a's command and its group to be gone",
      () => (!groupAlive(command) ? true : undefined),
      5000,
    );
    const [runA, runB] = await Promise.all([a.done, b.done]);
    expect(runA.exitCode).toBe(-1); // killed, no exit code
    expect(runB.exitCode, runB.stderr).toBe(0);
    expect(runB.stderr).toMatch(
      /its leader's session is gone; waiting .* for its lease to expire, then for any session its command still has connected to end, before taking over\./,
    );
    expect(runB.stderr).toMatch(
      /taking over: attempt #1 by a .*: its lease expired with no session of its leader or its command left; recorded as abandoned\./,
    );
    const rows = await runsOf(db);
    expect(rows.map((r) => [r.app, r.how])).toEqual([
      ["a", "sigterm"], // ended by its supervisor when a died, before it could finish
      ["b", "done"],
    ]);
    expectNoOverlap(rows);
    expect((await attemptsOf(db)).map((r) => r.status)).toEqual(["abandoned", "succeeded"]);
    expectNoSecret(runB);
  });

  it("leader and its supervisor killed: with --orphan-sessions terminate the taker ends the orphan's sessions instead of waiting for it", async () => {
    const db = await freshDb("sigkill-terminate");
    const a = hold(db, "a", ["--release-id", "k2"], { SLEEP_MS: "60000" });
    await until("a's command to start", async () => ((await runsOf(db)).length > 0 ? true : undefined));
    const b = hold(db, "b", ["--release-id", "k2", "--orphan-sessions", "terminate"], { SLEEP_MS: "200" });
    await waitForStderr(b.process, WAITING);
    // The exception an orphan now is: the orchestrator and its supervisor both die, and the command
    // (in a process group of its own) lives on. Stopped first, the orchestrator cannot end it either.
    const command = (await runsOf(db))[0]!.os_pid;
    const supervisor = parentOf(command);
    a.process.kill("SIGSTOP");
    process.kill(supervisor, "SIGKILL");
    a.process.kill("SIGKILL");
    const runB = await b.done;
    await a.done;
    expect(runB.exitCode, runB.stderr).toBe(0);
    // While the command's session was still connected (it is ended only below), the wait for the
    // lease did not claim the command was stopped by then: it said the sessions come next.
    const said = runB.stderr.search(
      /its leader's session is gone; waiting .* for its lease to expire, then for any session its command still has connected to end/,
    );
    const ended = runB.stderr.search(/ended \d+ session\(s\) its command left connected/);
    expect(said, runB.stderr).toBeGreaterThanOrEqual(0);
    expect(ended).toBeGreaterThan(said);
    expect(runB.stderr).not.toContain("stopped by then");
    // How many sessions the orphan's command had open is incidental; that none is left in this database is not.
    expect(runB.stderr).toMatch(/ended \d+ session\(s\) its command left connected/);
    expect(
      await db.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'release-orchestrator attempt 1'",
      ),
    ).toEqual([]);
    const rows = await runsOf(db);
    expect(rows.map((r) => r.app)).toEqual(["a", "b"]);
    // The orphan lost its session before it could record an end; kill it (it would sleep on).
    try {
      process.kill(command, "SIGKILL");
    } catch {
      // it may have ended on its own when its session went
    }
  });

  it("leader killed: a waiting follower reports the abandoned attempt (76) instead of hanging", async () => {
    const db = await freshDb("sigkill-follower");
    const open = holdUntil();
    const a = hold(db, "a", ["--release-id", "k3"], { HOLD_UNTIL: open.file, SLEEP_MS: "200" });
    await until("a's command to start", async () => ((await runsOf(db)).length > 0 ? true : undefined));
    const f = startCli(["run", "--role", "follower", "--release-id", "k3", "--wait-timeout", "60s"], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "f" },
    });
    await waitForStderr(f.process, WAITING);
    a.process.kill("SIGKILL");
    open.open();
    const runF = await f.done;
    await a.done;
    expect(runF.exitCode, runF.stderr).toBe(76);
    expect(runF.stderr).toMatch(
      /attempt #1 by a \(auto, pid \d+\) of migrate for release k3 was abandoned: its leader is gone \(its lease expired or its session ended\); exiting 76/,
    );
    expectNoSecret(runF);
  });

  it("lock session terminated mid-command: the leader stops its command, exits 77; the next starts only after", async () => {
    const db = await freshDb("terminated");
    const a = hold(db, "a", ["--release-id", "t1"], { SLEEP_MS: "30000" });
    await until("a's command to start", async () => ((await runsOf(db)).length > 0 ? true : undefined));
    const b = hold(db, "b", ["--release-id", "t1"], { SLEEP_MS: "200" });
    await waitForStderr(b.process, WAITING);
    const terminated = await db.query<{ ok: boolean }>(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'release-orchestrator a auto t1'",
    );
    expect(terminated).toEqual([{ ok: true }]);
    const [runA, runB] = await Promise.all([a.done, b.done]);
    expect(runA.exitCode, runA.stderr).toBe(77);
    expect(runA.stderr).toMatch(
      /ownership was lost: the lock session (failed \(terminating connection due to administrator command\)|closed); stopping the command/,
    );
    expect(runB.exitCode, runB.stderr).toBe(0);
    const rows = await runsOf(db);
    expect(rows.map((r) => [r.app, r.how])).toEqual([
      ["a", "sigterm"],
      ["b", "done"],
    ]);
    expectNoOverlap(rows);
    expect((await attemptsOf(db)).map((r) => r.status)).toEqual(["lost", "succeeded"]);
    expectNoSecret(runA, runB);
  });

  it("a command that ignores SIGTERM is killed after the grace when the lock is lost", async () => {
    const db = await freshDb("ignore-term");
    const a = hold(db, "a", ["--release-id", "t2"], { SLEEP_MS: "30000", IGNORE_TERM: "1" });
    await until("a's command to start", async () => ((await runsOf(db)).length > 0 ? true : undefined));
    await db.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'release-orchestrator a auto t2'",
    );
    const runA = await a.done;
    expect(runA.exitCode).toBe(77);
    const [row] = await runsOf(db);
    expect(row?.ended_at).toBeNull(); // it never got to record an end: SIGKILL
    expect(isAlive(row!.os_pid)).toBe(false); // and it is gone
  });

  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)(
    "%s is forwarded to the command's process group, grandchildren included; exit %i; lock released",
    async (signal, code) => {
      const db = await freshDb(`signal-${code}`);
      const dir = scratchDir();
      const pidFile = join(dir, "grandchild.pid");
      const a = startCli(
        ["run", "--release-id", "s1", "--", "sh", "-c", `sleep 1000 & echo $! > ${pidFile}; wait`],
        {
          env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "a" },
        },
      );
      const grandchild = await until("the grandchild", () =>
        Promise.resolve(
          existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== ""
            ? Number(readFileSync(pidFile, "utf8"))
            : undefined,
        ),
      );
      a.process.kill(signal);
      const run = await a.done;
      expect(run.exitCode, run.stderr).toBe(code);
      expect(run.stderr).toMatch(new RegExp(`received ${signal}; forwarding it to the command`));
      await waitFor(
        "the grandchild to end after the signal",
        () => (isAlive(grandchild) ? undefined : true),
        5_000,
      );
      expect((await attemptsOf(db)).map((r) => r.status)).toEqual(["interrupted"]);
      // The lock was released and the interrupted attempt does not count as done: the next run runs.
      const next = await runCli(["run", "--release-id", "s1", "--", "true"], {
        env: { DATABASE_URL: db.url },
      });
      expect(next.exitCode).toBe(0);
      expect(next.stderr).toMatch(/running migrate for release s1 \(attempt #2\)/);
    },
  );

  it("SIGTERM to a waiting follower: exit 143, nothing run, outcome recorded", async () => {
    const db = await freshDb("signal-follower");
    const f = startCli(["run", "--role", "follower", "--release-id", "s2"], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "f" },
    });
    await waitForStderr(f.process, WAITING);
    f.process.kill("SIGTERM");
    const run = await f.done;
    expect(run.exitCode).toBe(143);
    expect(run.stderr).toMatch(/interrupted by SIGTERM while waiting; nothing was run/);
  });

  it("CREATE INDEX CONCURRENTLY in the leader's command completes while 5 followers wait", async () => {
    const db = await freshDb("cic");
    await db.query("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g");
    const followers = Array.from({ length: 5 }, (_, i) =>
      startCli(["run", "--role", "follower", "--release-id", "c1", "--wait-timeout", "60s"], {
        env: { DATABASE_URL: db.url, RELEASE_APP_NAME: `f${i}` },
      }),
    );
    await Promise.all(followers.map((f) => waitForStderr(f.process, WAITING)));
    const leader = startCli(
      [
        "run",
        "--role",
        "leader",
        "--release-id",
        "c1",
        "--",
        process.execPath,
        SQL,
        "SELECT pg_sleep(1)",
        "CREATE INDEX CONCURRENTLY big_v_idx ON big (v)",
      ],
      { env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "leader" } },
    );
    const runs = await Promise.all([leader, ...followers].map((s) => s.done));
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.stderr).join("\n"),
    ).toEqual([0, 0, 0, 0, 0, 0]);
    expect(runs[0]!.stdout).toContain("ok: CREATE INDEX CONCURRENTLY");
    const [index] = await db.query<{ valid: boolean }>(
      "SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'big_v_idx'::regclass",
    );
    expect(index?.valid).toBe(true);
  });

  it("a command that prints 200 MB streams it through while the orchestrator stays under 100 MB RSS", async () => {
    const db = await freshDb("memory");
    // The build under test (the binary in the e2e-binary project); stdout is read and dropped, not kept.
    const { file, args, env } = cliInvocation(defaultCliKind(), { DATABASE_URL: db.url });
    const result = await execa(
      file,
      [
        ...args,
        "run",
        "--verbose",
        "--release-id",
        "m1",
        "--",
        "sh",
        "-c",
        "head -c 200000000 /dev/zero | tr '\\0' x; echo; echo end-of-output",
      ],
      {
        env,
        extendEnv: false,
        reject: false,
        stdout: ["pipe"],
        buffer: { stdout: false },
        cwd: scratchDir(),
      },
    ).catch((error: unknown) => error as never);
    expect(result.exitCode, String(result.stderr)).toBe(0);
    const rss = Number(/peak RSS (\d+) MB/.exec(String(result.stderr))?.[1]);
    expect(rss).toBeGreaterThan(0);
    expect(rss).toBeLessThan(100);
    const [row] = await db.query<{ tail: string }>(
      "SELECT output_tail AS tail FROM release_orchestrator.attempts",
    );
    expect(row?.tail.endsWith("xxx\nend-of-output\n")).toBe(true);
    expect(row?.tail.length).toBeLessThanOrEqual(16 * 1024);
  });
});
