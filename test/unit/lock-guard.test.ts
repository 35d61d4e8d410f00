// The lock-queue guard's pure rules: the waits between tries, when the tries stop, the sentences, and
// what a lead whose tries ran out records and exits with. The cancel itself: test/e2e/lock-guard.test.ts.

import { describe, expect, it } from "vitest";
import { leadEnding, statusOf } from "../../src/core/endings.js";
import { ExitCode } from "../../src/core/exit-codes.js";
import {
  describeBlockedOut,
  describeCancel,
  describeTry,
  nextTry,
  retryWait,
  type LockTry,
} from "../../src/core/lock-guard.js";
import { buildNotification } from "../../src/core/notification.js";
import { guardPollMs } from "../../src/run/guard.js";

const settings = { lockWaitMs: 3000, tries: 5, retryWaitMs: 5000 };

const cancelled: LockTry = {
  try: 2,
  of: 5,
  pid: 4120,
  mode: "AccessExclusiveLock",
  relation: "items",
  waitedMs: 3100,
  queued: 3,
  cancelledAt: "2026-12-04T10:03:00.000Z",
  blocker: {
    pid: 2851,
    applicationName: "web.1",
    state: "idle in transaction",
    stateSince: "2026-12-04T10:00:00.000Z",
    xactStart: "2026-12-04T09:59:58.000Z",
    query: "SELECT * FROM items WHERE id = 1",
  },
  retryInMs: 10_000,
};

describe("retryWait", () => {
  it("starts at --lock-retry-wait and doubles for each later try, within ±20 %", () => {
    expect([2, 3, 4, 5].map((n) => retryWait(n, 5000, 0.5))).toEqual([5000, 10_000, 20_000, 40_000]);
    expect(retryWait(2, 5000, 0)).toBe(4000);
    expect(retryWait(2, 5000, 1)).toBe(6000);
  });
});

describe("nextTry", () => {
  const now = 1_000_000;
  it("retries while tries are left and the next one starts before the deadline", () => {
    expect(nextTry({ done: 1, settings, nowMs: now, deadlineMs: now + 60_000, random: 0.5 })).toEqual({
      retry: true,
      waitMs: 5000,
    });
  });
  it("stops when every try was made", () => {
    expect(nextTry({ done: 5, settings, nowMs: now, deadlineMs: now + 3_600_000, random: 0.5 })).toEqual({
      retry: false,
      why: "tries",
    });
    expect(
      nextTry({
        done: 1,
        settings: { ...settings, tries: 1 },
        nowMs: now,
        deadlineMs: now + 60_000,
        random: 0,
      }),
    ).toMatchObject({ retry: false, why: "tries" });
  });
  it("never waits past --wait-timeout", () => {
    expect(nextTry({ done: 3, settings, nowMs: now, deadlineMs: now + 15_000, random: 0.5 })).toEqual({
      retry: false,
      why: "deadline",
    });
  });
});

describe("guardPollMs", () => {
  it("looks often enough that a stall lasts little more than --lock-wait, never more than twice a tenth of a second", () => {
    expect(guardPollMs(3000)).toBe(500);
    expect(guardPollMs(1000)).toBe(250);
    expect(guardPollMs(100)).toBe(100);
    for (const ms of [100, 250, 1000, 3000, 60_000])
      expect(guardPollMs(ms)).toBeLessThanOrEqual(Math.max(100, ms / 4));
  });
});

describe("the sentences", () => {
  it("a cancel names the blocker (pid, application_name, state, since when, the query's first line) and what comes next", () => {
    const text = describeCancel(cancelled);
    expect(text).toContain("try 2 of 5");
    expect(text).toContain("AccessExclusiveLock on items");
    expect(text).toContain("backend 2851, web.1, idle in transaction for 3 m (since 10:00:00 UTC)");
    expect(text).toContain('last query "SELECT * FROM items WHERE id = 1"');
    expect(text).toContain("3 sessions were queued behind it");
    expect(text).toMatch(/runs again in 10 s \(try 3 of 5\)/);
  });
  it("a blocker this user may not see is said so", () => {
    const hidden = {
      ...cancelled,
      blocker: { ...cancelled.blocker, state: null, query: null, applicationName: null },
    };
    expect(describeTry(hidden)).toContain(
      "backend 2851, no application_name, state not visible to this database user",
    );
  });
  it("tries that ran out say what to do", () => {
    const last = { ...cancelled, try: 5, retryInMs: null };
    expect(describeCancel(last)).toContain("no tries are left");
    const out = describeBlockedOut(last, "tries");
    expect(out).toMatch(/^all 5 tries were cancelled/);
    expect(out).toContain("pg_terminate_backend(2851)");
    expect(describeBlockedOut(cancelled, "deadline")).toMatch(
      /^2 tries were cancelled and the next one would start after --wait-timeout/,
    );
  });
});

describe("a lead whose tries ran out", () => {
  const facts = {
    run: { exitCode: 3, signal: null, byItself: true },
    interruptedBy: undefined,
    lostReason: undefined,
    blockedOut: describeBlockedOut({ ...cancelled, try: 5, retryInMs: null }, "tries"),
  };
  it("records failed and exits 75 (retryable), saying the blocker", () => {
    expect(statusOf(facts)).toEqual({ status: "failed", exitCode: ExitCode.timeout });
    const ending = leadEnding({
      ...facts,
      recorded: "recorded",
      attemptId: 7,
      task: "migrate",
      label: "release abc",
      durationMs: 30_000,
    });
    expect(ending).toMatchObject({ exitCode: 75, outcome: "timeout", notifyStatus: "failed" });
    expect(ending.message).toContain("the last try exited with code 3");
    expect(ending.message).toContain("all 5 tries were cancelled");
    expect(ending.fields).toMatchObject({ commandExitCode: 3, reason: "lock-guard" });
  });
  it("without a blocked-out sentence the same exit is an ordinary failure", () => {
    expect(statusOf({ ...facts, blockedOut: undefined })).toEqual({ status: "failed", exitCode: 3 });
  });
});

describe("the notification", () => {
  it("lists the cancelled tries in its text and payload, the blocker's query scrubbed", () => {
    const secret = "hunter2secret";
    const tries = [{ ...cancelled, blocker: { ...cancelled.blocker, query: `SELECT '${secret}'` } }];
    const payload = buildNotification(
      {
        kind: "attempt-finished",
        releaseId: "abc1234",
        task: "migrate",
        app: "s-app",
        role: "leader",
        status: "succeeded",
        exitCode: 0,
        durationMs: 20_000,
        attemptId: 7,
        host: "h",
        tries,
      },
      (text) => text.replaceAll(secret, "*****"),
      new Date("2026-12-04T10:05:00.000Z"),
    );
    expect(payload.text).toContain("lock guard: try 2 of 5: cancelled after 3 s");
    expect(payload.tries).toHaveLength(1);
    expect(JSON.stringify(payload)).not.toContain(secret);
  });
});
