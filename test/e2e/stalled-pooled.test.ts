// A paused leader through PgBouncer in transaction mode: there is no session to watch, the lease is
// all. Its supervisor stops the command at the stop time, before the lease can end, so the waiter that
// takes over after the lease runs the only execution; the leader, resumed, exits 77.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { ROOT, scratchDir, startCli } from "../support/cli.js";
import { startBouncer, type Bouncer } from "../support/pgbouncer.js";
import { requireTool } from "../support/tools.js";
import { WAITING, waitFor, waitForStderr } from "../support/wait.js";

const LATE_COMMIT = join(ROOT, "test/fixtures/late-commit.mjs");
const tool = requireTool("pgbouncer");
const db = useTestDatabase("stalled-pooled");
let bouncer: Bouncer | undefined;

beforeAll(async () => {
  if (tool.path === undefined) return;
  bouncer = await startBouncer(db().url, { poolMode: "transaction", poolSize: 4 });
  await db().query(
    "CREATE TABLE commits (id serial PRIMARY KEY, app text, attempt text, at timestamptz DEFAULT clock_timestamp())",
  );
}, 60_000);
afterAll(() => bouncer?.stop());

describe("a paused leader through a transaction pooler", () => {
  it("has its command stopped by its supervisor before its lease ends; the waiter runs the only execution", async () => {
    const url = bouncer!.url;
    const dir = scratchDir();
    const started = join(dir, "started");
    const args = ["run", "--kill-grace", "1s", "--release-id", "p1", "--", process.execPath, LATE_COMMIT];
    // a's migration would commit once its gate opens, which happens only after the takeover.
    const a = startCli(args, {
      env: { DATABASE_URL: url, RELEASE_APP_NAME: "a", HOLD_UNTIL: join(dir, "gate"), STARTED_FILE: started },
    });
    await waitFor("a's command to start", () => (existsSync(started) ? true : undefined));
    const b = startCli(args, { env: { DATABASE_URL: url, RELEASE_APP_NAME: "b" } });
    await waitForStderr(b.process, WAITING);
    a.process.kill("SIGSTOP");
    const commandPid = Number((await import("node:fs")).readFileSync(started, "utf8"));
    await waitFor("a's command to be stopped by its supervisor", () => {
      try {
        process.kill(commandPid, 0);
        return undefined;
      } catch {
        return true;
      }
    });
    const runB = await b.done;
    expect(runB.exitCode, runB.stderr).toBe(0);
    writeFileSync(join(dir, "gate"), ""); // too late for a's command: it is gone
    expect(await db().query("SELECT app FROM commits ORDER BY id")).toEqual([{ app: "b" }]);
    a.process.kill("SIGCONT");
    const runA = await a.done;
    expect(runA.exitCode, runA.stderr).toBe(77);
    expect(runA.stderr).toMatch(/did not renew its lease in time \(paused or frozen\?\)/);
    expect(
      (
        await db().query<{ status: string }>("SELECT status FROM release_orchestrator.attempts ORDER BY id")
      ).map((r) => r.status),
    ).toEqual(["abandoned", "succeeded"]);
  });
});
