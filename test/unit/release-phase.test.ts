// buildPhase: the release as a whole from its plans and attempts, every state of every scope.

import { describe, expect, it } from "vitest";
import {
  appTaskName,
  arrivalTask,
  buildPhase,
  describePhase,
  runOf,
  type PlanRecord,
  type PlannedTask,
} from "../../src/core/release-phase.js";
import type { Attempt, AttemptStatus } from "../../src/core/records.js";

const TASKS: PlannedTask[] = [
  { name: "migrate", scope: "release" },
  { name: "assets", scope: "app" },
  { name: "smoke", scope: "every" },
  { name: "contract", scope: "release", after: ["s-app", "s-admin"] },
];

const plan = (app: string, at: number, tasks = TASKS): PlanRecord => ({
  releaseId: "3f2c1a9e",
  app,
  tasks,
  host: `${app}-host`,
  pid: 100 + at,
  recordedAt: new Date(Date.UTC(2026, 11, 4, 12, 0, at)).toISOString(),
});

let nextId = 1;
function attempt(task: string, app: string, status: AttemptStatus, over: Partial<Attempt> = {}): Attempt {
  const id = nextId++;
  return {
    id,
    releaseId: "3f2c1a9e",
    task,
    lockName: "release-orchestrator",
    app,
    host: `${app}-host`,
    pid: 200 + id,
    role: "auto",
    command: "x",
    status,
    exitCode: status === "succeeded" ? 0 : status === "running" ? null : 3,
    signal: null,
    startedAt: "2026-12-04T12:00:10.000Z",
    heartbeatAt: "2026-12-04T12:00:10.000Z",
    finishedAt: status === "running" ? null : "2026-12-04T12:00:12.000Z",
    durationMs: status === "running" ? null : 1200,
    outputTail: null,
    lockBackendPid: null,
    tries: [],
    lease: null,
    blocked: null,
    ...over,
  };
}

const PLANS = [plan("s-admin", 2), plan("s-app", 1), plan("s-api", 3)];

describe("buildPhase", () => {
  it("a release in progress: each task with its scope, its runs per app, and what is pending", () => {
    const phase = buildPhase(PLANS, [
      attempt("migrate", "s-app", "succeeded"),
      attempt(appTaskName("assets", "s-app"), "s-app", "succeeded"),
      attempt(appTaskName("assets", "s-admin"), "s-admin", "failed"),
      attempt(appTaskName("assets", "s-api"), "s-api", "running"),
      attempt(arrivalTask("contract", "s-app"), "s-app", "succeeded"),
    ]);
    expect(phase.releaseId).toBe("3f2c1a9e");
    expect(phase.apps, "in the order they recorded their plans").toEqual(["s-app", "s-admin", "s-api"]);
    expect(phase.state, "a failed run that has not succeeded since").toBe("failed");
    expect(phase.tasks.map((t) => [t.name, t.scope, t.state])).toEqual([
      ["migrate", "release", "succeeded"],
      ["assets", "app", "failed"],
      ["smoke", "every", "unrecorded"],
      ["contract", "release", "pending"],
    ]);
    const assets = phase.tasks[1];
    expect(assets?.runs.map((r) => [r.forApp, r.state, r.attempt?.app ?? null])).toEqual([
      ["s-app", "succeeded", "s-app"],
      ["s-admin", "failed", "s-admin"],
      ["s-api", "running", "s-api"],
    ]);
    expect(phase.tasks[3]?.waitsFor).toEqual(["s-admin"]);
    expect(phase.pending).toEqual([
      "assets for s-admin (failed)",
      "assets for s-api (running)",
      "contract: waits for s-admin",
    ]);
    expect(describePhase(phase)).toEqual([
      "Release 3f2c1a9e as a whole (3 apps: s-app, s-admin, s-api): failed; pending: assets for s-admin (failed); assets for s-api (running); contract: waits for s-admin.",
      `  migrate (release): succeeded by s-app (#${phase.tasks[0]?.runs[0]?.attempt?.id}, 1 s).`,
      `  assets (app): s-app succeeded (#${assets?.runs[0]?.attempt?.id}, 1 s), s-admin failed (#${assets?.runs[1]?.attempt?.id}, exit 3), s-api running (#${assets?.runs[2]?.attempt?.id}).`,
      "  smoke (every): runs in every process, not recorded in the ledger.",
      "  contract (release, after s-app, s-admin): waits for s-admin.",
    ]);
  });

  it("a release done: the retried run succeeded, the post-deploy task ran once every named app arrived", () => {
    const phase = buildPhase(PLANS, [
      attempt("migrate", "s-app", "succeeded"),
      ...["s-app", "s-admin", "s-api"].map((app) => attempt(appTaskName("assets", app), app, "succeeded")),
      attempt(appTaskName("assets", "s-admin"), "s-admin", "lost"),
      attempt(arrivalTask("contract", "s-app"), "s-app", "succeeded"),
      attempt(arrivalTask("contract", "s-admin"), "s-admin", "succeeded"),
      attempt("contract", "s-admin", "succeeded"),
    ]);
    expect(phase.state).toBe("succeeded");
    expect(phase.pending).toEqual([]);
    expect(phase.tasks[1]?.runs[1]).toMatchObject({ forApp: "s-admin", state: "succeeded", failures: 1 });
    expect(phase.tasks[3]).toMatchObject({ state: "succeeded", waitsFor: [] });
    expect(phase.tasks[3]?.text).toMatch(/^contract \(release, after s-app, s-admin\): succeeded by s-admin/);
  });

  it("nothing run yet is pending; a running task makes the release running", () => {
    expect(buildPhase([plan("s-app", 1)], []).state).toBe("pending");
    expect(buildPhase([plan("s-app", 1)], []).tasks[3]?.waitsFor).toEqual(["s-app", "s-admin"]);
    const running = buildPhase([plan("s-app", 1)], [attempt("migrate", "s-app", "running")]);
    expect(running.state).toBe("running");
    expect(running.pending[0]).toMatch(/^migrate: running by s-app \(#\d+\)$/);
  });

  it("an app task is listed only for the apps whose file lists it; the earliest plan orders the tasks", () => {
    const web = plan("s-web", 1, [
      { name: "migrate", scope: "release" },
      { name: "cache", scope: "app" },
    ]);
    const admin = plan("s-admin", 2, [
      { name: "assets", scope: "app" },
      { name: "migrate", scope: "release" },
    ]);
    const phase = buildPhase([admin, web], []);
    expect(phase.tasks.map((t) => t.name)).toEqual(["migrate", "cache", "assets"]);
    expect(phase.tasks[1]?.runs.map((r) => r.forApp)).toEqual(["s-web"]);
    expect(phase.tasks[2]?.runs.map((r) => r.forApp)).toEqual(["s-admin"]);
  });
});

describe("runOf", () => {
  it("a success wins over a running or failed attempt; else the running one; else the last that ended", () => {
    const failed = attempt("migrate", "a", "failed");
    const running = attempt("migrate", "b", "running");
    const succeeded = attempt("migrate", "c", "succeeded");
    const duplicate = attempt("migrate", "d", "duplicate");
    expect(runOf(null, [failed, running, succeeded, duplicate]).attempt?.app).toBe("c");
    expect(runOf(null, [failed, running]).state).toBe("running");
    const abandoned = attempt("migrate", "e", "abandoned");
    expect(runOf(null, [failed, abandoned])).toMatchObject({ state: "failed", failures: 2 });
    expect(runOf(null, [failed, abandoned]).attempt?.status).toBe("abandoned");
    expect(runOf(null, [duplicate]).state, "a duplicate alone (0.1.0) is not a success").toBe("pending");
    expect(runOf("s-app", [])).toEqual({ forApp: "s-app", state: "pending", attempt: null, failures: 0 });
  });
});
