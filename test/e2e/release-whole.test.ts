// The release as a whole (issue 21 item 5): a release run from tasks files shows, in status, history,
// the page's API, /metrics and the notification, each task with its scope, who ran it (per app for an
// app task), its outcome, and what is still pending (a post-deploy task's missing apps, a failed app
// task). Real processes, real PostgreSQL, psql as the work, a real HTTP receiver for the notification.

import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../demo/free-port.js";
import type { ReleasePhase } from "../../src/core/release-phase.js";
import type { NotificationPayload } from "../../src/core/notification.js";
import { useFreshDatabases } from "../harness/database.js";
import { ROOT, runCli, startCli, type CliRun, type StartedCli } from "../support/cli.js";
import { parseExposition, valueOf } from "../support/prometheus.js";
import { appWithTasks, logDatabase, logTask } from "../support/task-log.js";
import { requireTool } from "../support/tools.js";
import { waitFor } from "../support/wait.js";

requireTool("psql");
const LEDGER_020 = readFileSync(join(ROOT, "test/fixtures/ledger-0.2.0.sql"), "utf8");
const freshDb = useFreshDatabases("whole");
const TOKEN = "whole-page-token-5b1c";
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The four-task file; `contract` runs after the apps named. */
const tasksFile = (after: string[]) => `tasks:
  - name: migrate
    run: ${JSON.stringify(logTask("migrate", "sleep 0.5; "))}
    scope: release
  - name: assets
    run: ${JSON.stringify(logTask("assets", 'if [ "$FAIL_ASSETS" = "$RELEASE_APP_NAME" ]; then exit 3; fi; '))}
    scope: app
  - name: smoke
    run: ${JSON.stringify(logTask("smoke"))}
    scope: every
  - name: contract
    run: ${JSON.stringify(logTask("contract"))}
    scope: release
    after: [${after.join(", ")}]
`;

const ready = (label: string) => logDatabase(freshDb, label);

const appDir = appWithTasks;

/** A real HTTP receiver of notifications: every payload it got, in order. */
async function receiver(): Promise<{ url: string; payloads: NotificationPayload[] }> {
  const payloads: NotificationPayload[] = [];
  const server: Server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      payloads.push(JSON.parse(body) as NotificationPayload);
      response.end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, payloads };
}

/** `serve` on a free port, with a token; its base URL once it listens. */
async function serve(url: string): Promise<string> {
  const port = await freePort();
  const server: StartedCli = startCli(["serve", "--port", String(port), "--host", "127.0.0.1"], {
    env: { DATABASE_URL: url, RELEASE_SERVE_TOKEN: TOKEN },
    timeoutMs: 120_000,
  });
  let stderr = "";
  server.process.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  cleanups.push(() => void server.process.kill("SIGKILL"));
  await waitFor("serve to listen", () => {
    if (server.process.exitCode !== null) throw new Error(`serve exited: ${stderr}`);
    return stderr.includes("release status page on") ? true : undefined;
  });
  return `http://127.0.0.1:${port}`;
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: response.status, text: await response.text() };
}

async function pagePhases(base: string): Promise<ReleasePhase[]> {
  const api = await get(`${base}/api/releases`);
  expect(api.status, api.text).toBe(200);
  return (JSON.parse(api.text) as { phases: ReleasePhase[] }).phases;
}

async function statusOf(url: string): Promise<{ text: string; phases: ReleasePhase[] }> {
  const text = await runCli(["status"], { env: { DATABASE_URL: url } });
  expect(text.exitCode, text.stderr).toBe(0);
  const json = await runCli(["status", "--json"], { env: { DATABASE_URL: url } });
  expect(json.exitCode, json.stderr).toBe(0);
  return { text: text.stdout, phases: (JSON.parse(json.stdout) as { phases: ReleasePhase[] }).phases };
}

const summary = (phase: ReleasePhase | undefined) =>
  phase?.tasks.map((t) => [t.name, t.scope, t.state, t.runs.map((r) => [r.forApp, r.state])]);

function release(url: string, dir: string, app: string, proc: string, extra: Record<string, string> = {}) {
  return startCli(["run", "--release-id", "whole-1"], {
    cwd: dir,
    env: { DATABASE_URL: url, RELEASE_APP_NAME: app, PROC: proc, ...extra },
    timeoutMs: 90_000,
  }).done;
}

const describeRuns = (runs: CliRun[]) => runs.map((r) => r.stderr).join("\n---\n");

describe("the release as a whole", () => {
  it("three apps (two processes of one) at once with the four-task file: every view says each task ran as its scope says", async () => {
    const db = await ready("race");
    const hook = await receiver();
    const dir = appDir(tasksFile(["s-app", "s-admin", "s-api"]));
    const procs = [
      ["s-app", "s-app.1"],
      ["s-app", "s-app.2"],
      ["s-admin", "s-admin.1"],
      ["s-api", "s-api.1"],
    ] as const;
    const runs = await Promise.all(
      procs.map(([app, proc]) => release(db.url, dir, app, proc, { RELEASE_NOTIFY_URL: hook.url })),
    );
    expect(
      runs.map((r) => r.exitCode),
      describeRuns(runs),
    ).toEqual([0, 0, 0, 0]);
    const rows = await db.query<{ task: string; app: string; at: Date }>(
      "SELECT task, app, at FROM log ORDER BY id",
    );
    expect(rows.filter((r) => r.task === "migrate")).toHaveLength(1);
    expect(
      rows.filter((r) => r.task === "contract"),
      "contract once",
    ).toHaveLength(1);
    const lastAssets = Math.max(...rows.filter((r) => r.task === "assets").map((r) => r.at.getTime()));
    expect(rows.find((r) => r.task === "contract")!.at.getTime(), "after every app's assets").toBeGreaterThan(
      lastAssets,
    );

    const expected = [
      ["migrate", "release", "succeeded", [[null, "succeeded"]]],
      [
        "assets",
        "app",
        "succeeded",
        expect.arrayContaining([
          ["s-app", "succeeded"],
          ["s-admin", "succeeded"],
          ["s-api", "succeeded"],
        ]) as unknown,
      ],
      ["smoke", "every", "unrecorded", []],
      ["contract", "release", "succeeded", [[null, "succeeded"]]],
    ];
    const status = await statusOf(db.url);
    const [phase] = status.phases;
    expect(phase).toMatchObject({ releaseId: "whole-1", state: "succeeded", pending: [] });
    expect([...(phase?.apps ?? [])].sort()).toEqual(["s-admin", "s-api", "s-app"]);
    expect(summary(phase)).toEqual(expected);
    // Who ran each app's assets: that app, never another.
    for (const run of phase?.tasks[1]?.runs ?? []) expect(run.attempt?.app).toBe(run.forApp);
    expect(status.text).toMatch(/Release whole-1 as a whole \(3 apps: [-a-z, ]+\): succeeded\./);
    expect(status.text).toMatch(/ {2}assets \(app\): s-\w+ succeeded \(#\d+, [^)]+\), s-\w+ succeeded/);
    expect(status.text).toContain("  smoke (every): runs in every process, not recorded in the ledger.");
    expect(status.text).toMatch(/ {2}contract \(release, after s-app, s-admin, s-api\): succeeded by s-\w+/);

    const history = await runCli(["history", "--release", "whole-1"], { env: { DATABASE_URL: db.url } });
    expect(history.exitCode, history.stderr).toBe(0);
    expect(history.stdout).toMatch(/Release whole-1 as a whole \(3 apps: [-a-z, ]+\): succeeded\./);
    const listed = await runCli(["history", "--release", "whole-1", "--json"], {
      env: { DATABASE_URL: db.url },
    });
    expect(Array.isArray(JSON.parse(listed.stdout)), "history --json stays the list of attempts").toBe(true);

    const base = await serve(db.url);
    expect(summary((await pagePhases(base))[0])).toEqual(expected);
    const metrics = await get(`${base}/metrics`);
    const m = parseExposition(metrics.text);
    expect(valueOf(m, "release_orchestrator_release_info", { release: "whole-1", state: "succeeded" })).toBe(
      1,
    );
    const runsOf = (task: string, scope: string, state: string) =>
      valueOf(m, "release_orchestrator_release_task_runs", { task, scope, state });
    expect(runsOf("assets", "app", "succeeded")).toBe(3);
    expect(runsOf("assets", "app", "pending")).toBe(0);
    expect(runsOf("contract", "release", "succeeded")).toBe(1);

    // Every attempt's leader notified; the last (contract's) shows the release complete.
    const contract = hook.payloads.find((p) => p.task === "contract");
    expect(contract?.phase).toMatchObject({ releaseId: "whole-1", state: "succeeded", pending: [] });
    expect(contract?.text).toMatch(/\nRelease whole-1 as a whole \(3 apps: [-a-z, ]+\): succeeded\.\n/);
    expect(hook.payloads.map((p) => p.task).sort()).toEqual([
      "assets@s-admin",
      "assets@s-api",
      "assets@s-app",
      "contract",
      "migrate",
    ]);
  });

  it("what is pending stays visible: a post-deploy task waits for the app that has not arrived, a failed app task says so, until the release completes", async () => {
    const db = await ready("pending");
    const dir = appDir(tasksFile(["s-app", "s-admin"]));
    const base = await serve(db.url);

    const first = await release(db.url, dir, "s-app", "s-app.1");
    expect(first.exitCode, first.stderr).toBe(0);
    let status = await statusOf(db.url);
    expect(status.phases[0]).toMatchObject({
      state: "pending",
      apps: ["s-app"],
      pending: ["contract: waits for s-admin"],
    });
    expect(status.text).toContain("contract (release, after s-app, s-admin): waits for s-admin.");
    expect((await pagePhases(base))[0]?.tasks[3]).toMatchObject({ state: "pending", waitsFor: ["s-admin"] });

    // s-admin's assets fail: its run is failed, the post-deploy task still waits for it.
    const failed = await release(db.url, dir, "s-admin", "s-admin.1", { FAIL_ASSETS: "s-admin" });
    expect(failed.exitCode, failed.stderr).toBe(3);
    status = await statusOf(db.url);
    expect(status.phases[0]?.state).toBe("failed");
    expect(status.phases[0]?.pending).toEqual(["assets for s-admin (failed)", "contract: waits for s-admin"]);
    expect(status.text).toMatch(
      /assets \(app\): s-app succeeded \(#\d+, [^)]+\), s-admin failed \(#\d+, exit 3\)\./,
    );
    let m = parseExposition((await get(`${base}/metrics`)).text);
    expect(valueOf(m, "release_orchestrator_release_info", { release: "whole-1", state: "failed" })).toBe(1);
    expect(
      valueOf(m, "release_orchestrator_release_task_runs", { task: "assets", scope: "app", state: "failed" }),
    ).toBe(1);

    // Its retry resumes at assets and, s-admin being the last to arrive, runs contract: complete.
    const retry = await release(db.url, dir, "s-admin", "s-admin.2");
    expect(retry.exitCode, retry.stderr).toBe(0);
    status = await statusOf(db.url);
    expect(status.phases[0]).toMatchObject({ state: "succeeded", pending: [] });
    expect(status.phases[0]?.tasks[1]?.runs.find((r) => r.forApp === "s-admin")).toMatchObject({
      state: "succeeded",
      failures: 1,
    });
    expect(status.phases[0]?.tasks[3]?.runs[0]?.attempt?.app).toBe("s-admin");
    m = parseExposition((await get(`${base}/metrics`)).text);
    expect(valueOf(m, "release_orchestrator_release_info", { release: "whole-1", state: "succeeded" })).toBe(
      1,
    );
    const migrates = await db.query("SELECT 1 FROM log WHERE task = 'migrate'");
    expect(migrates).toHaveLength(1);
  });

  it("a single `run -- cmd` release records no plan: status and the page show no release as a whole", async () => {
    const db = await ready("single");
    const done = await runCli(["run", "--release-id", "one-1", "--", "true"], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
    });
    expect(done.exitCode, done.stderr).toBe(0);
    const status = await statusOf(db.url);
    expect(status.phases).toEqual([]);
    expect(status.text).not.toContain("as a whole");
  });

  it("a ledger 0.2.0 created (no tries, no plans): status, history, the page and /metrics read it; the next run adds them and keeps version 2", async () => {
    const db = await ready("v020");
    await db.query(LEDGER_020);
    const base = await serve(db.url);
    const api = await get(`${base}/api/releases`);
    expect(api.status, api.text).toBe(200);
    const body = JSON.parse(api.text) as {
      phases: unknown[];
      releases: { releaseId: string; status: string }[];
    };
    expect(body.phases).toEqual([]);
    expect(body.releases.map((r) => [r.releaseId, r.status])).toEqual([
      ["0b0b0b0", "succeeded"],
      ["0a0a0a0", "succeeded"],
    ]);
    const metrics = await get(`${base}/metrics`);
    expect(metrics.status, metrics.text).toBe(200);
    const before = parseExposition(metrics.text);
    expect(valueOf(before, "release_orchestrator_attempts", { task: "migrate", status: "failed" })).toBe(1);
    expect(valueOf(before, "release_orchestrator_lock_cancels_total", { task: "migrate" })).toBe(0);
    expect((await statusOf(db.url)).phases).toEqual([]);
    const history = await runCli(["history"], { env: { DATABASE_URL: db.url } });
    expect(history.exitCode, history.stderr).toBe(0);
    expect(history.stdout).toMatch(/#2 +0b0b0b0 +migrate +s-app +auto +failed +3/);
    const doctor = await runCli(["doctor"], { env: { DATABASE_URL: db.url } });
    expect(doctor.stdout).toContain(
      "(0.2.0's; the next run adds the lock guard's tries and the plans table)",
    );

    const dir = appDir(tasksFile(["s-app"]));
    const completed = await release(db.url, dir, "s-app", "s-app.1");
    expect(completed.exitCode, completed.stderr).toBe(0);
    // Still version 2, so that apps still on 0.2.0 (which accept exactly version 2) keep working.
    const [meta] = await db.query<{ value: string; comment: string }>(
      `SELECT value, obj_description('release_orchestrator.attempts'::regclass) AS comment
         FROM release_orchestrator.meta WHERE key = 'ledger_version'`,
    );
    expect(meta).toEqual({ value: "2", comment: "release-orchestrator ledger v2" });
    expect((await statusOf(db.url)).phases[0]).toMatchObject({ releaseId: "whole-1", state: "succeeded" });
    expect((await pagePhases(base))[0]).toMatchObject({ releaseId: "whole-1", state: "succeeded" });
    // 0.2.0's history is kept, and its finished release is not run again.
    const again = await runCli(["run", "--release-id", "0a0a0a0", "--", "false"], {
      env: { DATABASE_URL: db.url, RELEASE_APP_NAME: "s-app" },
    });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already succeeded for release 0a0a0a0 \(attempt #1 by s-app\)/);
  });
});
