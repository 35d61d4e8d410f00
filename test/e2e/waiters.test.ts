// What operators see while a release runs, with real processes: who waits now, for whom and since when
// (a waiter SIGKILLed shows as gone, never as waiting forever), and what blocks the leader's command
// (a session of the app that holds a conflicting lock, named by pid and application_name).

import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { followerOutcome } from "../../src/db/ledger/sql.js";
import { ROOT, runCli, startCli, type StartedCli } from "../support/cli.js";
import { gate, waitFor, waitForRunningAttempt, waitForStderr } from "../support/wait.js";

const SQL = join(ROOT, "test/fixtures/sql.mjs");
const db = useTestDatabase("waiters");
const started: StartedCli[] = [];
const clients: pg.Client[] = [];
afterAll(async () => {
  for (const cli of started) cli.process.kill("SIGKILL");
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
});

function cli(app: string, args: string[]): StartedCli {
  const run = startCli(args, { env: { DATABASE_URL: db().url, RELEASE_APP_NAME: app }, timeoutMs: 90_000 });
  started.push(run);
  return run;
}

interface Waiter {
  app: string;
  pid: number;
  outcome: string;
  attemptId: number | null;
  releaseId: string | null;
  startedAt: string | null;
  waitedMs: number;
}
interface Status {
  running: { id: number; blocked: { pid: number; blocker: Record<string, unknown> } | null }[];
  waiters: Waiter[];
}

async function status(): Promise<{ text: string; json: Status }> {
  const env = { env: { DATABASE_URL: db().url } };
  const [text, json] = await Promise.all([runCli(["status"], env), runCli(["status", "--json"], env)]);
  expect([text.exitCode, json.exitCode], text.stderr + json.stderr).toEqual([0, 0]);
  return { text: text.stdout, json: JSON.parse(json.stdout) as Status };
}

describe("live waiters and what blocks the command", () => {
  it("status shows who waits now, for whom and since when; a SIGKILLed waiter shows as gone, then is recorded gone", async () => {
    const g = gate();
    const leader = cli("w-app", ["run", "--role", "leader", "--release-id", "w1", "--", ...g.command]);
    await waitForRunningAttempt(db(), "w1");
    const [attempt] = await db().query<{ id: string }>(
      "SELECT id FROM release_orchestrator.attempts WHERE release_id = 'w1'",
    );
    const web = cli("w-web", ["run", "--role", "follower", "--release-id", "w1"]);
    const worker = cli("w-worker", ["run", "--release-id", "w1", "--", "sh", "-c", "exit 9"]);
    await waitFor("both to be recorded as waiting", async () => {
      const rows = await db().query(
        "SELECT 1 FROM release_orchestrator.follower_outcomes WHERE outcome = 'waiting'",
      );
      return rows.length === 2 ? true : undefined;
    });

    const live = await status();
    // In the order they started waiting, which the two processes race for: compared by app.
    const byApp = [...live.json.waiters].sort((x, y) => x.app.localeCompare(y.app));
    expect(byApp.map((w) => [w.app, w.outcome, w.attemptId, w.releaseId])).toEqual([
      ["w-web", "waiting", Number(attempt!.id), "w1"],
      ["w-worker", "waiting", Number(attempt!.id), "w1"],
    ]);
    expect(live.json.waiters.every((w) => w.startedAt !== null && w.waitedMs >= 0)).toBe(true);
    expect(live.text).toContain("Waiting: 2 processes.");
    expect(live.text).toMatch(
      new RegExp(
        `w-web \\(follower, wait mode, pid ${web.process.pid} on .+\\) waits for attempt #${attempt!.id} of migrate for w1 since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\(\\d+`,
      ),
    );

    // SIGKILL: the waiter cannot say anything; its heartbeat stops, and status says it is gone.
    worker.process.kill("SIGKILL");
    // The ledger reads it as gone (the database clock decides, by the expression status uses) before
    // status runs: polling status itself would start two processes every 50 ms for 10 s.
    await waitFor(
      "the ledger to read the SIGKILLed waiter as gone",
      async () => {
        const rows = await db().query(
          `SELECT 1 FROM release_orchestrator.follower_outcomes f
            WHERE f.app = 'w-worker' AND ${followerOutcome("f")} = 'gone'`,
        );
        return rows.length === 1 ? true : undefined;
      },
      40_000,
    );
    const gone = await waitFor(
      "status to show the SIGKILLed waiter as gone",
      async () => {
        // Text and JSON are two processes reading at slightly different times: both must say gone.
        const now = await status();
        const saysGone =
          now.json.waiters.find((w) => w.app === "w-worker")?.outcome === "gone" &&
          now.text.includes("w-worker (auto, wait mode");
        return saysGone && now.text.includes(") is gone: ") ? now : undefined;
      },
      40_000,
    );
    expect(gone.json.waiters.find((w) => w.app === "w-web")?.outcome).toBe("waiting");
    expect(gone.text).toContain("Waiting: 1 process (and 1 gone).");
    expect(gone.text).toMatch(
      /w-worker \(auto, wait mode, pid \d+ on .+\) is gone: no heartbeat since .+ ago\), after waiting \d+.* for attempt #\d+ of migrate for w1; it was killed or lost its database connection\./,
    );

    // The leader finishes: the live waiter ends in its own row, and the gone one is recorded gone.
    g.open();
    expect((await leader.done).exitCode).toBe(0);
    expect((await web.done).exitCode).toBe(0);
    expect(
      await db().query(
        "SELECT app, outcome, exit_code, attempt_id FROM release_orchestrator.follower_outcomes ORDER BY app",
      ),
    ).toEqual([
      { app: "w-web", outcome: "succeeded", exit_code: 0, attempt_id: attempt!.id },
      { app: "w-worker", outcome: "gone", exit_code: null, attempt_id: attempt!.id },
    ]);
    const after = await status();
    expect(after.text).toContain("Waiting: nobody.");
    const history = await runCli(["history"], { env: { DATABASE_URL: db().url } });
    expect(history.stdout).toMatch(/↳ w-worker\s+auto\s+gone\s+-/);
  }, 120_000);

  it("names the session that blocks the command (pid, application_name, state, since when) in the run's output and in status", async () => {
    await db().query("CREATE TABLE IF NOT EXISTS items (id int)");
    // The app's web process: a transaction left open after reading the table (idle in transaction).
    const web = new pg.Client({ connectionString: db().url, application_name: "web.1" });
    clients.push(web);
    await web.connect();
    await web.query("BEGIN");
    await web.query("SELECT count(*) FROM items");
    const webPid = (await web.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;

    // Its own lock name: independent of the test above, whatever state that one ended in.
    const leader = cli("b-app", [
      "run",
      "--lock-name",
      "blocking-test",
      "--release-id",
      "b1",
      "--",
      process.execPath,
      SQL,
      "ALTER TABLE items ADD COLUMN note text",
    ]);
    const blocked = new RegExp(
      `blocked: the command's session \\(backend pid \\d+\\) has waited \\d+ s for AccessExclusiveLock on items, blocked by backend pid ${webPid} \\(application_name "web\\.1", idle in transaction since \\d\\d:\\d\\d:\\d\\d UTC \\(\\d+ s\\), transaction open since \\d\\d:\\d\\d:\\d\\d UTC\\); that session holds a transaction open: commit or roll back in that app, or end it with SELECT pg_terminate_backend\\(${webPid}\\) if that is safe\\.`,
    );
    await waitForStderr(leader.process, blocked, 40_000);

    const now = await status();
    const running = now.json.running.find((a) => a.blocked !== null);
    expect(running?.blocked?.blocker).toMatchObject({
      pid: webPid,
      applicationName: "web.1",
      state: "idle in transaction",
      waiting: false,
    });
    expect(now.text).toMatch(
      new RegExp(
        `\\n  Blocked: the command's session .* blocked by backend pid ${webPid} \\(application_name "web\\.1", idle in transaction`,
      ),
    );

    // The app commits: the command gets its lock and finishes.
    await web.query("COMMIT");
    const done = await leader.done;
    expect(done.exitCode, done.stderr).toBe(0);
    const columns = await db().query(
      "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'",
    );
    expect(columns).toHaveLength(1);
    const stillRunning = (await status()).json.running as unknown as { releaseId: string }[];
    expect(stillRunning.filter((a) => a.releaseId === "b1")).toEqual([]);
  }, 120_000);
});
