// The release phase as a tasks file (issue 21): `run` with no command runs release-tasks.yml's tasks in
// order, each under its scope's ownership. Three apps, two processes of one, start at once: `migrate`
// (release) runs once, `assets` (app) once per app, `smoke` (every) in every process; nobody starts a
// task before the ones before it succeeded for it. Real processes, real PostgreSQL, psql as the work.

import { afterEach, describe, expect, it } from "vitest";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { startBouncer, type Bouncer } from "../support/pgbouncer.js";
import { CLI_KINDS, runCli, startCli, type CliKind, type CliRun } from "../support/cli.js";
import { appWithTasks, logDatabase, logTask } from "../support/task-log.js";
import { requireTool } from "../support/tools.js";

requireTool("psql");
const freshDb = useFreshDatabases("tasks");
const bouncers: Bouncer[] = [];
afterEach(() => {
  for (const bouncer of bouncers.splice(0)) bouncer.stop();
});

const TASKS = `# the release phase of three apps
tasks:
  - name: migrate
    run: ${JSON.stringify(logTask("migrate", "sleep 1; "))}
    scope: release
  - name: assets
    run: ${JSON.stringify(logTask("assets", 'if [ "$FAIL_ASSETS" = "$RELEASE_APP_NAME" ]; then exit 3; fi; '))}
    scope: app
  - name: smoke
    run: ["sh", "-c", ${JSON.stringify(logTask("smoke"))}]
    scope: every
`;

const appDir = (text = TASKS) => appWithTasks(text);

const ready = (label: string) => logDatabase(freshDb, label);

const PROCESSES = [
  { app: "s-app", proc: "s-app.1" },
  { app: "s-app", proc: "s-app.2" },
  { app: "s-admin", proc: "s-admin.1" },
  { app: "s-api", proc: "s-api.1" },
];

function release(
  url: string,
  dir: string,
  p: { app: string; proc: string },
  extra: Record<string, string> = {},
  cli?: CliKind,
) {
  return startCli(["run", "--release-id", "tasks-1"], {
    cwd: dir,
    env: { DATABASE_URL: url, RELEASE_APP_NAME: p.app, PROC: p.proc, ...extra },
    timeoutMs: 90_000,
    ...(cli === undefined ? {} : { cli }),
  });
}

interface Row {
  task: string;
  app: string;
  proc: string;
  at: Date;
}
const rows = (db: TestDatabase) => db.query<Row>("SELECT task, app, proc, at FROM log ORDER BY id");
const count = (all: Row[], task: string) => all.filter((r) => r.task === task).length;
const describeRuns = (runs: CliRun[]) => runs.map((r) => r.stderr).join("\n---\n");

async function raceAll(db: TestDatabase, url: string, cli?: CliKind): Promise<Row[]> {
  const dir = appDir();
  const runs = await Promise.all(PROCESSES.map((p) => release(url, dir, p, {}, cli).done));
  expect(
    runs.map((r) => r.exitCode),
    describeRuns(runs),
  ).toEqual([0, 0, 0, 0]);
  return rows(db);
}

function expectOnce(all: Row[]): void {
  expect(count(all, "migrate"), "migrate once per release").toBe(1);
  expect(
    all
      .filter((r) => r.task === "assets")
      .map((r) => r.app)
      .sort(),
    "assets once per app",
  ).toEqual(["s-admin", "s-api", "s-app"]);
  expect(
    all
      .filter((r) => r.task === "smoke")
      .map((r) => r.proc)
      .sort(),
    "smoke in every process",
  ).toEqual(PROCESSES.map((p) => p.proc).sort());
  // No process started a task before the ones before it were done for it.
  const migrate = all.find((r) => r.task === "migrate") as Row;
  for (const r of all.filter((x) => x.task !== "migrate"))
    expect(r.at.getTime()).toBeGreaterThan(migrate.at.getTime());
  for (const smoke of all.filter((r) => r.task === "smoke")) {
    const assets = all.find((r) => r.task === "assets" && r.app === smoke.app) as Row;
    expect(smoke.at.getTime(), `${smoke.proc}'s smoke after ${smoke.app}'s assets`).toBeGreaterThan(
      assets.at.getTime(),
    );
  }
}

const POST_DEPLOY = `tasks:
  - name: migrate
    run: ${JSON.stringify(logTask("migrate"))}
  - name: assets
    run: ${JSON.stringify(logTask("assets", "sleep 0.5; "))}
    scope: app
  - name: contract
    run: ${JSON.stringify(logTask("contract"))}
    after: [s-app, s-admin]
`;

describe("a post-deploy task (after:)", () => {
  it("runs once, by the last of the apps it names to finish the tasks before it; the others go on without it", async () => {
    const db = await ready("post-deploy");
    const dir = appDir(POST_DEPLOY);
    const first = await release(db.url, dir, { app: "s-app", proc: "s-app.1" }).done;
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/contract: waits for s-admin/);
    expect(count(await rows(db), "contract"), "not before s-admin arrived").toBe(0);
    const other = await release(db.url, dir, { app: "s-web", proc: "s-web.1" }).done;
    expect(other.exitCode, other.stderr).toBe(0);
    expect(other.stderr).toMatch(/contract: post-deploy, run by the last of s-app, s-admin .*not this app's/);
    const last = await release(db.url, dir, { app: "s-admin", proc: "s-admin.1" }).done;
    expect(last.exitCode, last.stderr).toBe(0);
    let all = await rows(db);
    expect(all.filter((r) => r.task === "contract").map((r) => r.app)).toEqual(["s-admin"]);
    const assets = all.find((r) => r.task === "assets" && r.app === "s-admin") as Row;
    const contract = all.find((r) => r.task === "contract") as Row;
    expect(contract.at.getTime()).toBeGreaterThan(assets.at.getTime());
    // A retry of either app finds it done.
    const again = await release(db.url, dir, { app: "s-app", proc: "s-app.2" }).done;
    expect(again.exitCode, again.stderr).toBe(0);
    all = await rows(db);
    expect(count(all, "contract")).toBe(1);
    expect(count(all, "migrate")).toBe(1);
  });

  it("two named apps finishing at once: it runs once, every process exits 0", async () => {
    const db = await ready("post-deploy-race");
    const dir = appDir(POST_DEPLOY);
    const runs = await Promise.all(
      [
        { app: "s-app", proc: "s-app.1" },
        { app: "s-app", proc: "s-app.2" },
        { app: "s-admin", proc: "s-admin.1" },
      ].map((p) => release(db.url, dir, p).done),
    );
    expect(
      runs.map((r) => r.exitCode),
      describeRuns(runs),
    ).toEqual([0, 0, 0]);
    const all = await rows(db);
    expect(count(all, "contract")).toBe(1);
    const lastAssets = Math.max(...all.filter((r) => r.task === "assets").map((r) => r.at.getTime()));
    expect((all.find((r) => r.task === "contract") as Row).at.getTime()).toBeGreaterThan(lastAssets);
  });
});

describe("a release-tasks.yml run by run with no command", () => {
  it.each(CLI_KINDS)(
    "%s: three apps, two processes of one, at once: each task as often as its scope says",
    async (cli) => {
      const db = await ready(`race-${cli}`);
      const all = await raceAll(db, db.url, cli);
      expectOnce(all);
      const attempts = await db.query<{ task: string; status: string }>(
        "SELECT task, status FROM release_orchestrator.attempts ORDER BY task",
      );
      expect(attempts).toEqual([
        { task: "assets@s-admin", status: "succeeded" },
        { task: "assets@s-api", status: "succeeded" },
        { task: "assets@s-app", status: "succeeded" },
        { task: "migrate", status: "succeeded" },
      ]);
    },
  );

  it("the same race through PgBouncer in transaction mode", async () => {
    const db = await ready("pooled");
    const bouncer = await startBouncer(db.url, { poolMode: "transaction", poolSize: 4 });
    bouncers.push(bouncer);
    expectOnce(await raceAll(db, bouncer.url));
  });

  it("assets fails for one app: its processes exit with its code, the others are unaffected; its retry resumes at assets", async () => {
    const db = await ready("fails");
    const dir = appDir();
    const runs = await Promise.all(
      PROCESSES.map((p) => release(db.url, dir, p, { FAIL_ASSETS: "s-admin" }).done),
    );
    expect(
      runs.map((r) => r.exitCode),
      describeRuns(runs),
    ).toEqual([0, 0, 3, 0]);
    expect(runs[2]?.stderr).toMatch(/assets ended with exit code 3: smoke did not run/);
    let all = await rows(db);
    expect(all.filter((r) => r.proc === "s-admin.1").map((r) => r.task)).toEqual([]);
    // The retry of s-admin's release: migrate is not run again, assets and smoke are.
    const retry = await release(db.url, dir, PROCESSES[2] as { app: string; proc: string }).done;
    expect(retry.exitCode, retry.stderr).toBe(0);
    all = await rows(db);
    expect(count(all, "migrate")).toBe(1);
    expect(all.filter((r) => r.app === "s-admin").map((r) => r.task)).toEqual(["assets", "smoke"]);
  });

  it("a follower waits for the release task but runs its own app's and every-process tasks", async () => {
    const db = await ready("follower");
    const dir = appDir();
    const follower = release(db.url, dir, { app: "s-web", proc: "s-web.1" }, { RUN_MIGRATIONS: "false" });
    const leader = release(db.url, dir, { app: "s-app", proc: "s-app.1" });
    const runs = await Promise.all([follower.done, leader.done]);
    expect(
      runs.map((r) => r.exitCode),
      describeRuns(runs),
    ).toEqual([0, 0]);
    const all = await rows(db);
    expect(all.filter((r) => r.task === "migrate").map((r) => r.app)).toEqual(["s-app"]);
    expect(all.filter((r) => r.app === "s-web").map((r) => r.task)).toEqual(["assets", "smoke"]);
  });

  it("wait with no --task waits for the file's release tasks", async () => {
    const db = await ready("wait");
    const dir = appDir();
    const gate = startCli(["wait", "--release-id", "tasks-1"], {
      cwd: dir,
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-web" },
    });
    const lead = await release(db.url, dir, { app: "s-app", proc: "s-app.1" }).done;
    expect(lead.exitCode, lead.stderr).toBe(0);
    const waited = await gate.done;
    expect(waited.exitCode, waited.stderr).toBe(0);
    expect(waited.stderr).toMatch(/migrate/);
  });

  it("an every task's timeout stops its command: SIGTERM, exit 143, the tasks after it do not run", async () => {
    const db = await ready("timeout");
    const dir = appDir(`tasks:
  - name: smoke
    run: ["sleep", "30"]
    scope: every
    timeout: 1s
  - name: after-smoke
    run: ${JSON.stringify(logTask("after-smoke"))}
    scope: every
`);
    const run = await release(db.url, dir, { app: "s-app", proc: "s-app.1" }).done;
    expect(run.exitCode, run.stderr).toBe(143);
    expect(run.stderr).toMatch(/smoke failed in this process: the command was killed by SIGTERM/);
    expect(await rows(db)).toEqual([]);
  });

  it("a bad file: every problem with its file and line, exit 64, nothing runs", async () => {
    const db = await ready("bad");
    const dir = appDir(`tasks:
  - name: migrate
    run: "true"
    scope: galaxy
  - name: assets
    scope: app
  - name: contract
    run: "true"
    after: [s-app]
`);
    const bad = await runCli(["run", "--release-id", "tasks-1"], {
      cwd: dir,
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
    });
    expect(bad.exitCode, bad.stderr).toBe(64);
    expect(bad.stderr).toMatch(/release-tasks\.yml:4: .*galaxy/);
    expect(bad.stderr).toMatch(/release-tasks\.yml:5: .*assets.*run/);
    expect(await db.query("SELECT to_regclass('release_orchestrator.attempts') IS NULL AS none")).toEqual([
      { none: true },
    ]);
    const post = appDir(TASKS);
    const missing = await runCli(["run", "--release-id", "tasks-1", "--tasks-file", "nope.yml"], {
      cwd: post,
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
    });
    expect(missing.exitCode).toBe(64);
    expect(missing.stderr).toMatch(
      /Cannot read the tasks file .*nope\.yml \(from --tasks-file\): it does not exist/,
    );
  });
});
