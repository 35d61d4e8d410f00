// `release-orchestrator wait`: the gate of an app process that must not start on the old schema. It runs
// nothing; started before the release it waits (visible in status), and exits 0 once the task
// succeeded, 76 when it failed, 75 at --wait-timeout; directly and through PgBouncer in both modes.

import { afterEach, describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { startBouncer, type Bouncer } from "../support/pgbouncer.js";
import { runCli, startCli, type CliRun } from "../support/cli.js";
import { requireTool } from "../support/tools.js";
import { gate, waitFor, waitForRunningAttempt } from "../support/wait.js";

const freshDb = useFreshDatabases("wait");
const bouncers: Bouncer[] = [];
afterEach(() => {
  for (const bouncer of bouncers.splice(0)) bouncer.stop();
});

const env = (url: string, app: string) => ({ DATABASE_URL: url, RELEASE_APP_NAME: app });

function waiter(url: string, args: string[] = []) {
  return startCli(["wait", "--release-id", "w-1", ...args], { env: env(url, "s-web"), timeoutMs: 90_000 });
}

interface Status {
  waiters: { app: string; outcome: string; task: string; releaseId: string | null }[];
}

/** Until status --json shows s-web waiting for the release. */
function shownWaiting(url: string, task = "migrate") {
  return waitFor(`status to show s-web waiting for ${task}`, async () => {
    const run = await runCli(["status", "--json"], { env: { DATABASE_URL: url } });
    if (run.exitCode !== 0) return undefined;
    const report = JSON.parse(run.stdout) as Status;
    return report.waiters.some((w) => w.app === "s-web" && w.outcome === "waiting" && w.task === task)
      ? true
      : undefined;
  });
}

const finishedAt = async (db: TestDatabase) =>
  (
    await db.query<{ finished_at: Date }>(
      "SELECT finished_at FROM release_orchestrator.attempts WHERE status <> 'running' ORDER BY id DESC LIMIT 1",
    )
  )[0]?.finished_at.getTime() ?? Number.NaN;

async function gateBeforeRelease(db: TestDatabase, url: string): Promise<{ wait: CliRun; lead: CliRun }> {
  const wait = waiter(url);
  // Nothing has started yet: the gate waits for a release that has no attempt.
  await shownWaiting(url);
  const open = gate();
  const leader = startCli(["run", "--release-id", "w-1", "--", ...open.command], { env: env(url, "s-app") });
  await waitForRunningAttempt(db, "w-1");
  expect(wait.process.exitCode, "the gate still waits while the leader runs").toBeNull();
  open.open();
  const [lead, done] = await Promise.all([leader.done, wait.done]);
  return { wait: done, lead };
}

describe("release-orchestrator wait", () => {
  it("started before the release: waits (status shows it), exits 0 once the leader's migrate succeeded, not before", async () => {
    const db = await freshDb("before");
    const { wait, lead } = await gateBeforeRelease(db, db.url);
    expect([lead.exitCode, wait.exitCode], `${lead.stderr}\n---\n${wait.stderr}`).toEqual([0, 0]);
    expect(wait.exitedAt).toBeGreaterThanOrEqual((await finishedAt(db)) - 1000);
    // It ran nothing and says what it waited for.
    expect(wait.stderr).toMatch(/s-web/);
    expect(wait.stdout).toBe("");
  });

  it("exits 76 when the release's migrate failed, 0 at once when it is already done", async () => {
    const db = await freshDb("failed");
    const wait = waiter(db.url);
    await shownWaiting(db.url);
    const failing = await runCli(["run", "--release-id", "w-1", "--", "sh", "-c", "exit 3"], {
      env: env(db.url, "s-app"),
    });
    expect(failing.exitCode).toBe(3);
    const failed = await wait.done;
    expect(failed.exitCode, failed.stderr).toBe(76);
    const ok = await runCli(["run", "--release-id", "w-1", "--", "true"], { env: env(db.url, "s-app") });
    expect(ok.exitCode, ok.stderr).toBe(0);
    const done = await runCli(["wait", "--release-id", "w-1"], { env: env(db.url, "s-web") });
    expect(done.exitCode, done.stderr).toBe(0);
  });

  it("exits 75 at --wait-timeout, over every --task together; waits for each --task in turn", async () => {
    const db = await freshDb("timeout");
    const timedOut = await runCli(["wait", "--release-id", "w-1", "--wait-timeout", "2s"], {
      env: env(db.url, "s-web"),
    });
    expect(timedOut.exitCode, timedOut.stderr).toBe(75);
    const ran = await runCli(["run", "--release-id", "w-1", "--", "true"], { env: env(db.url, "s-app") });
    expect(ran.exitCode).toBe(0);
    // migrate is done, seed never runs: the second task times out.
    const second = await runCli(
      ["wait", "--release-id", "w-1", "--task", "migrate", "--task", "seed", "--wait-timeout", "2s"],
      { env: env(db.url, "s-web") },
    );
    expect(second.exitCode, second.stderr).toBe(75);
    expect(second.stderr).toMatch(/seed/);
    const seed = startCli(["run", "--release-id", "w-1", "--task", "seed", "--", "true"], {
      env: env(db.url, "s-app"),
    });
    expect((await seed.done).exitCode).toBe(0);
    const both = await runCli(["wait", "--release-id", "w-1", "--task", "migrate", "--task", "seed"], {
      env: env(db.url, "s-web"),
    });
    expect(both.exitCode, both.stderr).toBe(0);
  });

  it("refuses a command, a missing release id and a bad task name with 64, running nothing", async () => {
    const db = await freshDb("bad");
    const withCommand = await runCli(["wait", "--release-id", "w-1", "--", "true"], {
      env: env(db.url, "s-web"),
    });
    expect(withCommand.exitCode).toBe(64);
    expect(withCommand.stderr).toMatch(/wait runs no command/);
    const noId = await runCli(["wait"], { env: env(db.url, "s-web") });
    expect(noId.exitCode).toBe(64);
    expect(noId.stderr).toMatch(/needs a release id/);
    const badTask = await runCli(
      ["wait", "--release-id", "w-1", "--task", "migrate", "--task", "no spaces"],
      {
        env: env(db.url, "s-web"),
      },
    );
    expect(badTask.exitCode).toBe(64);
    expect(await db.query("SELECT to_regclass('release_orchestrator.attempts') IS NULL AS none")).toEqual([
      { none: true },
    ]);
  });

  describe("through PgBouncer", () => {
    requireTool("pgbouncer");
    it.each(["transaction", "session"] as const)(
      "in %s mode: the gate waits and exits 0 with the release",
      async (mode) => {
        const db = await freshDb(`pooled-${mode}`);
        const bouncer = await startBouncer(db.url, { poolMode: mode, poolSize: 4 });
        bouncers.push(bouncer);
        const { wait, lead } = await gateBeforeRelease(db, bouncer.url);
        expect([lead.exitCode, wait.exitCode], `${lead.stderr}\n---\n${wait.stderr}`).toEqual([0, 0]);
        expect(wait.exitedAt).toBeGreaterThanOrEqual((await finishedAt(db)) - 1000);
      },
    );
  });
});
