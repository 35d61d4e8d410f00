// formatMetrics: the Prometheus text format, read back with a real parser.

import { describe, expect, it } from "vitest";
import { DURATION_BUCKETS_SECONDS, formatMetrics, type MetricsSnapshot } from "../../src/core/metrics.js";
import { ATTEMPT_STATUSES, type Attempt, type AttemptStatus } from "../../src/core/records.js";
import { buildPhase } from "../../src/core/release-phase.js";
import { parseExposition, valueOf } from "../support/prometheus.js";

const snapshot: MetricsSnapshot = {
  lockName: "release-orchestrator",
  lockHeld: true,
  attempts: [
    { task: "migrate", status: "failed", count: 2 },
    { task: "migrate", status: "running", count: 1 },
    { task: "migrate", status: "succeeded", count: 5 },
    { task: 'seed"x\\y', status: "succeeded", count: 1 },
  ],
  lastSuccess: [
    { task: "migrate", seconds: 1_795_000_000.25 },
    { task: 'seed"x\\y', seconds: 1_795_000_100 },
  ],
  leases: [
    { task: "migrate", held: 1 },
    { task: 'seed"x\\y', held: 0 },
  ],
  waiters: [{ task: "migrate", count: 0 }],
  lockCancels: [
    { task: "migrate", count: 3 },
    { task: 'seed"x\\y', count: 0 },
  ],
  durations: [
    { task: "migrate", status: "failed", buckets: [0, 1, 2, 2, 2, 2, 2, 2, 2, 2], count: 2, sumSeconds: 9.5 },
    {
      task: "migrate",
      status: "succeeded",
      buckets: [1, 3, 4, 4, 4, 4, 4, 5, 5, 5],
      count: 5,
      sumSeconds: 700,
    },
  ],
};

describe("formatMetrics", () => {
  const text = formatMetrics(snapshot);
  const exposition = parseExposition(text);

  it("describes every family with its type and help", () => {
    expect(Object.fromEntries([...exposition.families].map(([name, f]) => [name, f.type]))).toEqual({
      release_orchestrator_attempts: "gauge",
      release_orchestrator_last_success_timestamp_seconds: "gauge",
      release_orchestrator_lock_held: "gauge",
      release_orchestrator_lease_held: "gauge",
      release_orchestrator_waiters: "gauge",
      release_orchestrator_lock_cancels_total: "counter",
      release_orchestrator_attempt_duration_seconds: "histogram",
      release_orchestrator_release_info: "gauge",
      release_orchestrator_release_task_runs: "gauge",
    });
    for (const [name, family] of exposition.families) expect(family.help, name).toMatch(/\S{3}/);
    expect(text.endsWith("\n")).toBe(true);
  });

  it("counts the lock-queue guard's cancels per task, zeros included", () => {
    expect(valueOf(exposition, "release_orchestrator_lock_cancels_total", { task: "migrate" })).toBe(3);
    expect(valueOf(exposition, "release_orchestrator_lock_cancels_total", { task: 'seed"x\\y' })).toBe(0);
  });

  it("counts attempts by task and status, with label values escaped", () => {
    const attempts = (labels: Record<string, string>) =>
      valueOf(exposition, "release_orchestrator_attempts", labels);
    expect(attempts({ task: "migrate", status: "succeeded" })).toBe(5);
    expect(attempts({ task: "migrate", status: "failed" })).toBe(2);
    expect(attempts({ task: "migrate", status: "running" })).toBe(1);
    expect(attempts({ task: 'seed"x\\y', status: "succeeded" })).toBe(1);
    expect(text).toContain('task="seed\\"x\\\\y"');
  });

  it("exports every status of every task it knows, 0 where none: the failed series exists before the first failure", () => {
    const fresh = parseExposition(
      formatMetrics({
        ...snapshot,
        attempts: [{ task: "migrate", status: "succeeded", count: 1 }],
        lastSuccess: [{ task: "migrate", seconds: 1_795_000_000 }],
        leases: [{ task: "migrate", held: 0 }],
        // A task known only by its waiters (its leader's attempt not yet recorded): its series exist too.
        waiters: [{ task: "seed", count: 1 }],
        durations: [],
      }),
    );
    const series = fresh.samples
      .filter((s) => s.name === "release_orchestrator_attempts")
      .map((s) => [s.labels.task, s.labels.status, s.value]);
    const statuses = [...ATTEMPT_STATUSES].sort();
    expect(series).toEqual([
      ...statuses.map((status) => ["migrate", status, status === "succeeded" ? 1 : 0]),
      ...statuses.map((status) => ["seed", status, 0]),
    ]);
    expect(valueOf(fresh, "release_orchestrator_attempts", { task: "migrate", status: "failed" })).toBe(0);
    // The full snapshot above: its missing statuses are there at 0, its counts unchanged.
    expect(valueOf(exposition, "release_orchestrator_attempts", { task: "migrate", status: "lost" })).toBe(0);
    expect(
      valueOf(exposition, "release_orchestrator_attempts", { task: 'seed"x\\y', status: "failed" }),
    ).toBe(0);
  });

  it("says when each task last succeeded, whether the lock and the leases are held", () => {
    expect(
      valueOf(exposition, "release_orchestrator_last_success_timestamp_seconds", { task: "migrate" }),
    ).toBe(1_795_000_000.25);
    expect(valueOf(exposition, "release_orchestrator_lock_held", { lock: "release-orchestrator" })).toBe(1);
    expect(valueOf(exposition, "release_orchestrator_lease_held", { task: "migrate" })).toBe(1);
    expect(valueOf(exposition, "release_orchestrator_lease_held", { task: 'seed"x\\y' })).toBe(0);
    const free = parseExposition(formatMetrics({ ...snapshot, lockHeld: false }));
    expect(valueOf(free, "release_orchestrator_lock_held", { lock: "release-orchestrator" })).toBe(0);
  });

  it("counts waiters per task, 0 for a task nobody waits on", () => {
    expect(valueOf(exposition, "release_orchestrator_waiters", { task: "migrate" })).toBe(0);
    const live = parseExposition(formatMetrics({ ...snapshot, waiters: [{ task: "migrate", count: 3 }] }));
    expect(valueOf(live, "release_orchestrator_waiters", { task: "migrate" })).toBe(3);
  });

  it("gives attempt durations as a cumulative histogram per task and status", () => {
    const name = "release_orchestrator_attempt_duration_seconds";
    const ok = { task: "migrate", status: "succeeded" };
    const buckets = [...DURATION_BUCKETS_SECONDS.map(String), "+Inf"].map((le) =>
      valueOf(exposition, `${name}_bucket`, { ...ok, le }),
    );
    expect(buckets).toEqual([1, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5]);
    expect(valueOf(exposition, `${name}_count`, ok)).toBe(5);
    expect(valueOf(exposition, `${name}_sum`, ok)).toBe(700);
    expect(valueOf(exposition, `${name}_count`, { task: "migrate", status: "failed" })).toBe(2);
  });

  it("reads an empty ledger as families without samples, except the lock", () => {
    const empty = parseExposition(
      formatMetrics({
        ...snapshot,
        lockHeld: false,
        attempts: [],
        lastSuccess: [],
        leases: [],
        waiters: [],
        lockCancels: [],
        durations: [],
      }),
    );
    expect(empty.samples.map((s) => s.name)).toEqual(["release_orchestrator_lock_held"]);
  });

  it("gives the newest release run from tasks files as a whole: its id and state, its tasks' runs by state", () => {
    const plan = (app: string, second: number) => ({
      releaseId: "3f2c1a9e",
      app,
      tasks: [
        { name: "migrate", scope: "release" as const },
        { name: "assets", scope: "app" as const },
        { name: "smoke", scope: "every" as const },
      ],
      host: "h",
      pid: 1,
      recordedAt: `2026-12-04T12:00:0${second}.000Z`,
    });
    const ran = (id: number, task: string, status: AttemptStatus): Attempt => ({
      id,
      releaseId: "3f2c1a9e",
      task,
      lockName: "release-orchestrator",
      app: "s-app",
      host: "h",
      pid: 1,
      role: "auto",
      command: null,
      status,
      exitCode: 0,
      signal: null,
      startedAt: "2026-12-04T12:00:10.000Z",
      heartbeatAt: "2026-12-04T12:00:10.000Z",
      finishedAt: null,
      durationMs: null,
      outputTail: null,
      lockBackendPid: null,
      tries: [],
      lease: null,
      blocked: null,
    });
    const phase = buildPhase(
      [plan("s-app", 1), plan("s-admin", 2)],
      [ran(1, "migrate", "succeeded"), ran(2, "assets@s-app", "running")],
    );
    const whole = parseExposition(formatMetrics({ ...snapshot, phase }));
    expect(
      valueOf(whole, "release_orchestrator_release_info", { release: "3f2c1a9e", state: "running" }),
    ).toBe(1);
    const runs = (task: string, scope: string, state: string) =>
      valueOf(whole, "release_orchestrator_release_task_runs", { task, scope, state });
    expect(runs("migrate", "release", "succeeded")).toBe(1);
    expect(runs("migrate", "release", "failed"), "every state, zeros included").toBe(0);
    expect(runs("assets", "app", "running")).toBe(1);
    expect(runs("assets", "app", "pending")).toBe(1);
    expect(
      whole.samples.some((s) => s.labels.task === "smoke"),
      "every-process tasks are not in the ledger",
    ).toBe(false);
    expect(exposition.samples.some((s) => s.name.startsWith("release_orchestrator_release_"))).toBe(false);
  });

  it("the parser check fails on a malformed line (so the checks above can fail)", () => {
    expect(() => parseExposition(`${text}release_orchestrator_attempts{task="x} 1\n`)).toThrow(/malformed/);
    expect(() => parseExposition(`${text}release_orchestrator_attempts{task="x"} one\n`)).toThrow(
      /malformed/,
    );
    expect(() => parseExposition(`${text}release_orchestrator_attempts{task="x"} 1\n`)).not.toThrow();
    // A duplicate series: the parser keeps both samples, valueOf refuses to pick one.
    const twice = parseExposition(`${text}release_orchestrator_lock_held{lock="release-orchestrator"} 0\n`);
    expect(() => valueOf(twice, "release_orchestrator_lock_held", { lock: "release-orchestrator" })).toThrow(
      /2 samples/,
    );
  });
});
