// buildNotification: what a receiver gets, scrubbed; retryDelay: the backoff between attempts.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/core/config.js";
import { buildNotification, TAIL_LINES, type NotifyEvent } from "../../src/core/notification.js";
import { NOTIFY_BUDGET_MS, retryDelay } from "../../src/run/notify.js";
import { createReporter } from "../../src/core/reporter.js";
import { buildPhase } from "../../src/core/release-phase.js";

const PASSWORD = "s3cret/pw@x";
const failed: NotifyEvent = {
  kind: "attempt-finished",
  releaseId: "3f2c1a9e5b7d4c2a8e1f0b9d6c5a4e3f2d1c0b9a",
  task: "migrate",
  app: "s-app",
  role: "leader",
  status: "failed",
  exitCode: 3,
  durationMs: 2140,
  attemptId: 12,
  host: "run.1234",
  outputTail: `== AddBioToUsers: migrating\nconnecting to postgres://app:${encodeURIComponent(PASSWORD)}@db/app\n<!channel> & friends\nPG::UndefinedColumn: ERROR:  column "email" does not exist\n`,
};

function scrubber() {
  const reporter = createReporter({ write: () => {} });
  reporter.addSecret(PASSWORD);
  return (text: string) => reporter.redact(text);
}

describe("buildNotification", () => {
  const now = new Date("2026-11-30T12:00:00.000Z");

  it("carries release, task, app, role, status, exit code, duration, attempt, the scrubbed tail and a text", () => {
    const payload = buildNotification(failed, scrubber(), now);
    expect(payload).toMatchObject({
      event: "attempt-finished",
      release: failed.releaseId,
      task: "migrate",
      app: "s-app",
      role: "leader",
      status: "failed",
      exitCode: 3,
      signal: null,
      durationMs: 2140,
      attempt: 12,
      host: "run.1234",
      leaderApp: null,
      at: "2026-11-30T12:00:00.000Z",
    });
    expect(payload.outputTail).toContain('PG::UndefinedColumn: ERROR:  column "email" does not exist');
    expect(payload.outputTail).toContain("postgres://app:*****@db/app");
    expect(payload.text).toMatch(
      /^release-orchestrator: s-app \(leader\): migrate for release 3f2c1a9 FAILED with exit code 3 after 2 s \(attempt #12\)\.\n```\n/,
    );
    // Slack: the tail is escaped (no @channel ping, no link markup) and shown in a code block.
    expect(payload.text).toContain("&lt;!channel&gt; &amp; friends");
    expect(payload.text.endsWith("\n```")).toBe(true);
    const json = JSON.stringify(payload);
    expect(json).not.toContain(PASSWORD);
    expect(json).not.toContain(encodeURIComponent(PASSWORD));
  });

  it("says a success in one line, without the output", () => {
    const payload = buildNotification({ ...failed, status: "succeeded", exitCode: 0 }, scrubber(), now);
    expect(payload.text).toBe(
      "release-orchestrator: s-app (leader): migrate for release 3f2c1a9 succeeded in 2 s (attempt #12).",
    );
    expect(payload.outputTail).toContain("AddBioToUsers");
  });

  it("carries the release as a whole when it runs from tasks files: its lines in the text, the phase in the payload", () => {
    const phase = buildPhase(
      [
        {
          releaseId: failed.releaseId as string,
          app: "s-app",
          tasks: [
            { name: "migrate", scope: "release" },
            { name: "contract", scope: "release", after: ["s-app", `s-admin-${PASSWORD}`] },
          ],
          host: "run.1234",
          pid: 4,
          recordedAt: "2026-11-30T11:59:00.000Z",
        },
      ],
      [],
    );
    const payload = buildNotification(
      { ...failed, status: "succeeded", exitCode: 0, phase },
      scrubber(),
      now,
    );
    expect(payload.text.split("\n")).toEqual([
      "release-orchestrator: s-app (leader): migrate for release 3f2c1a9 succeeded in 2 s (attempt #12).",
      `Release ${failed.releaseId} as a whole (1 app: s-app): pending; pending: migrate: pending; contract: waits for s-app, s-admin-*****.`,
      "  migrate (release): pending.",
      "  contract (release, after s-app, s-admin-*****): waits for s-app, s-admin-*****.",
    ]);
    expect(payload.phase?.tasks.map((t) => [t.name, t.scope, t.state])).toEqual([
      ["migrate", "release", "pending"],
      ["contract", "release", "pending"],
    ]);
    expect(JSON.stringify(payload)).not.toContain(PASSWORD);
    expect(buildNotification(failed, scrubber(), now).phase, "a single task: no phase").toBeNull();
  });

  it("names a follower's timeout and whom it waited for", () => {
    const payload = buildNotification(
      {
        kind: "follower-timeout",
        releaseId: "8b41d07",
        task: "migrate",
        app: "s-admin",
        role: "follower",
        status: "timeout",
        exitCode: 75,
        durationMs: 55 * 60_000,
        attemptId: 12,
        leaderApp: "s-app",
      },
      scrubber(),
      now,
    );
    expect(payload).toMatchObject({
      event: "follower-timeout",
      status: "timeout",
      exitCode: 75,
      leaderApp: "s-app",
    });
    expect(payload.outputTail).toBeNull();
    expect(payload.text).toBe(
      "release-orchestrator: s-admin (follower) TIMED OUT after waiting 55 m (exit 75) for migrate for release 8b41d07, led by s-app (attempt #12).",
    );
  });

  it("words every end of an attempt", () => {
    const text = (change: Partial<NotifyEvent>) =>
      buildNotification({ ...failed, ...change }, scrubber(), now).text;
    expect(text({ status: "lost", exitCode: null, signal: "SIGTERM" })).toContain(
      "LOST its lock after 2 s; the command was stopped (killed by SIGTERM)",
    );
    expect(text({ status: "interrupted", exitCode: 143 })).toContain(
      "was interrupted after 2 s (exit code 143)",
    );
    expect(text({ status: "abandoned", exitCode: null })).toContain(
      "was ABANDONED: its lease expired with no session of its leader or its command left",
    );
    expect(text({ releaseId: null })).toContain("migrate for release (unversioned)");
  });

  it("keeps the end of a long output", () => {
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i}`).join("\n");
    const payload = buildNotification({ ...failed, outputTail: lines }, scrubber(), now);
    const kept = payload.outputTail?.split("\n") ?? [];
    expect(kept).toHaveLength(TAIL_LINES);
    expect(kept.at(-1)).toBe("line 499");
    expect(payload.text).toContain("line 499");
    expect(payload.text).not.toContain("line 480\n");
  });
});

describe("retryDelay", () => {
  it("doubles from 250 ms to at most 2 s, so a down receiver gets several tries within the 10 s budget", () => {
    expect([1, 2, 3, 4, 5, 6, 10].map(retryDelay)).toEqual([250, 500, 1000, 2000, 2000, 2000, 2000]);
    expect(NOTIFY_BUDGET_MS).toBe(10_000);
  });
});

describe("RELEASE_NOTIFY_URL", () => {
  const parse = (value: string) =>
    parseConfig({
      flags: {},
      argvCommand: ["true"],
      env: { DATABASE_URL: "postgres://app:pw@db/app", RELEASE_NOTIFY_URL: value },
      dotenv: {},
    });

  it("takes an http(s) URL", () => {
    const result = parse("https://hooks.slack.com/services/T0/B0/secret");
    expect(result.ok && result.config.notifyUrl).toBe("https://hooks.slack.com/services/T0/B0/secret");
  });

  it("refuses anything else with one sentence that does not show the value (it may hold a token)", () => {
    for (const value of [
      "hooks.slack.com/services/T0/B0/s3cr3tValue",
      "ftp://x/s3cr3tValue",
      "s3cr3tValue",
    ]) {
      const result = parse(value);
      expect(result.ok).toBe(false);
      const errors = result.ok ? [] : result.errors;
      expect(errors).toEqual([
        "the notification URL must be an http:// or https:// URL; its value is not shown, as it may hold a token (from RELEASE_NOTIFY_URL).",
      ]);
    }
  });
});
