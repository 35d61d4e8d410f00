// A leader that stops answering without dying (its orchestrator SIGSTOPped, its command at work without
// a database session) never leads to a second execution. On a direct URL its lock session says it is
// alive: waiters wait for it (stalled), and it records its command's real outcome when it resumes.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { ROOT, runCli, scratchDir, startCli } from "../support/cli.js";
import { WAITING, waitFor, waitForStderr } from "../support/wait.js";

const LATE_COMMIT = join(ROOT, "test/fixtures/late-commit.mjs");
const freshDb = useFreshDatabases("stalled");

/** The lease with --kill-grace 1s: 2 s + 1.5 s + 1 s + 3 s. */
const LEASE_MS = 7500;

async function ready(label: string): Promise<TestDatabase> {
  const db = await freshDb(label);
  await db.query(
    "CREATE TABLE commits (id serial PRIMARY KEY, app text, attempt text, at timestamptz DEFAULT clock_timestamp())",
  );
  return db;
}

/** A leader whose migration waits for its gate without a session, then commits one row. */
function leader(db: TestDatabase, release: string) {
  const dir = scratchDir();
  const gate = join(dir, "gate");
  const started = join(dir, "started");
  const run = startCli(
    ["run", "--kill-grace", "1s", "--release-id", release, "--", process.execPath, LATE_COMMIT],
    {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "a", HOLD_UNTIL: gate, STARTED_FILE: started },
    },
  );
  return {
    run,
    openGate: () => void import("node:fs").then((fs) => fs.writeFileSync(gate, "")),
    commandStarted: () => waitFor("a's command to start", () => (existsSync(started) ? true : undefined)),
  };
}

function waiter(db: TestDatabase, release: string, args: string[] = []) {
  return startCli(
    ["run", "--kill-grace", "1s", "--release-id", release, ...args, "--", process.execPath, LATE_COMMIT],
    { env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "b" } },
  );
}

interface StatusJson {
  running: { id: number; stalled: boolean; lease: { leftMs: number; sessionGone: boolean | null } | null }[];
}

async function status(db: TestDatabase): Promise<StatusJson> {
  const run = await runCli(["status", "--json"], { env: { DATABASE_URL: db.url } });
  return JSON.parse(run.stdout) as StatusJson;
}

const commits = (db: TestDatabase) => db.query<{ app: string }>("SELECT app FROM commits ORDER BY id");
const attempts = (db: TestDatabase) =>
  db.query<{ status: string; app: string; finished_at: Date | null }>(
    "SELECT status, app, finished_at FROM release_orchestrator.attempts ORDER BY id",
  );

/** Until status --json says the running attempt is stalled (lease out, lock session alive). */
function stalledInStatus(db: TestDatabase) {
  return waitFor(
    "status --json to show the leader stalled",
    async () => {
      const report = await status(db);
      return report.running[0]?.stalled === true ? report : undefined;
    },
    LEASE_MS * 4,
  );
}

describe("a stalled leader (its orchestrator paused, its command at work)", () => {
  it("is waited for, not taken over; its command's success, landing while it is paused, is recorded when it resumes", async () => {
    const db = await ready("success-while-paused");
    const a = leader(db, "s1");
    await a.commandStarted();
    const b = waiter(db, "s1");
    await waitForStderr(b.process, WAITING);
    a.run.process.kill("SIGSTOP");
    const report = await stalledInStatus(db);
    expect(report.running[0]?.lease).toMatchObject({ sessionGone: false });
    expect(report.running[0]?.lease?.leftMs).toBeLessThanOrEqual(0);
    // The command commits while its orchestrator is still paused.
    a.openGate();
    await waitFor("a's command to commit", async () => ((await commits(db)).length === 1 ? true : undefined));
    expect((await attempts(db)).map((r) => r.status)).toEqual(["running"]); // nobody took it over
    a.run.process.kill("SIGCONT");
    const [runA, runB] = await Promise.all([a.run.done, b.done]);
    expect(runA.exitCode, runA.stderr).toBe(0);
    expect(runB.exitCode, runB.stderr).toBe(0);
    expect(await commits(db)).toEqual([{ app: "a" }]); // one execution
    const [recorded] = await attempts(db);
    expect(recorded?.status).toBe("succeeded");
    // b exits after a's success is recorded, and said once why it waited.
    expect(runB.exitedAt).toBeGreaterThanOrEqual(recorded!.finished_at!.getTime() - 1000);
    expect(
      runB.stderr.match(
        /s1 on .*: a's leader is stalled: its leader's lock session \(backend pid \d+\) is connected but has not renewed the lease for \d+ s: paused or frozen\?/g,
      ),
    ).toHaveLength(1);
    expect(runB.stderr).toMatch(/succeeded; done after waiting/);
  });

  it("resumed before its command commits, it renews its lease again and its command's success is recorded once", async () => {
    const db = await ready("commit-after-resume");
    const a = leader(db, "s2");
    await a.commandStarted();
    const b = waiter(db, "s2");
    await waitForStderr(b.process, WAITING);
    a.run.process.kill("SIGSTOP");
    await stalledInStatus(db);
    a.run.process.kill("SIGCONT");
    await waitFor("a's lease to be renewed again", async () => {
      const report = await status(db);
      return report.running[0]?.stalled === false && (report.running[0]?.lease?.leftMs ?? 0) > 0
        ? true
        : undefined;
    });
    a.openGate();
    const [runA, runB] = await Promise.all([a.run.done, b.done]);
    expect(runA.exitCode, runA.stderr).toBe(0);
    expect(runB.exitCode, runB.stderr).toBe(0);
    expect(await commits(db)).toEqual([{ app: "a" }]);
    expect((await attempts(db)).map((r) => r.status)).toEqual(["succeeded"]);
  });

  it("a waiter whose --wait-timeout is shorter than the pause exits 75, said once, and nothing runs", async () => {
    const db = await ready("timeout");
    const a = leader(db, "s3");
    await a.commandStarted();
    a.run.process.kill("SIGSTOP");
    try {
      const b = waiter(db, "s3", ["--wait-timeout", `${(LEASE_MS * 2) / 1000}s`]);
      const runB = await b.done;
      expect(runB.exitCode, runB.stderr).toBe(75);
      expect(runB.stderr.match(/a's leader is stalled/g)).toHaveLength(1);
      expect(runB.stderr).toMatch(/timed out after \d+ s waiting for attempt #1 by a/);
      expect(await commits(db)).toEqual([]);
      expect((await attempts(db)).map((r) => r.status)).toEqual(["running"]);
    } finally {
      a.run.process.kill("SIGCONT");
      a.openGate();
    }
    expect((await a.run.done).exitCode).toBe(0);
    expect(await commits(db)).toEqual([{ app: "a" }]);
  });

  it("the way out: --orphan-sessions terminate ends its lock session and its command's watch session; its command is stopped, the resumed leader exits 77, the waiter runs it once", async () => {
    const db = await ready("way-out");
    const a = leader(db, "s4");
    await a.commandStarted();
    a.run.process.kill("SIGSTOP");
    await stalledInStatus(db);
    const b = waiter(db, "s4", ["--orphan-sessions", "terminate"]);
    const runB = await b.done;
    expect(runB.exitCode, runB.stderr).toBe(0);
    expect(runB.stderr).toMatch(
      /its leader was stalled \(connected as backend pid \d+, lease not renewed\); ended its session \(--orphan-sessions terminate\)/,
    );
    expect(runB.stderr).toMatch(/ended \d+ session\(s\) its command left connected/);
    // a's command was stopped by its supervisor before it could commit (its gate never opened): b's is the only execution.
    expect(await commits(db)).toEqual([{ app: "b" }]);
    a.run.process.kill("SIGCONT");
    const runA = await a.run.done;
    expect(runA.exitCode, runA.stderr).toBe(77);
    expect(runA.stderr).toMatch(/watch session ended/);
    expect((await attempts(db)).map((r) => r.status)).toEqual(["abandoned", "succeeded"]);
  });
});
