// The loss rule and a lead's endings, as tables: every observation a leader can make, with and
// without the lock, before and after its stop time; every way a command can end, recorded or not.

import { describe, expect, it } from "vitest";
import { leadEnding, statusOf, type LeadFacts, type Recorded } from "../../src/core/endings.js";
import {
  judge,
  LEASE_MARGIN_MS,
  leaseFor,
  stopBy,
  type Observation,
  type OwnershipState,
} from "../../src/core/ownership.js";

const state = (holdsLock: boolean, late: boolean): OwnershipState => ({
  holdsLock,
  lastRenewedMs: 1_000,
  stopByMs: 10_000,
  nowMs: late ? 10_000 : 5_000,
});

const OBSERVATIONS: Record<string, Observation> = {
  renewed: { kind: "renewed", owned: true, lockHeld: true },
  "lease not ours": { kind: "renewed", owned: false, lockHeld: true },
  "lock not held": { kind: "renewed", owned: true, lockHeld: false },
  "renewal failed": {
    kind: "renewal-failed",
    message: "terminating connection due to administrator command",
  },
  "session changed": { kind: "session-changed" },
  "lock session error": { kind: "lock-session-ended", message: "Connection terminated unexpectedly" },
  "lock session closed": { kind: "lock-session-ended", message: undefined },
  "stop time": { kind: "stop-time" },
};

describe("the loss rule", () => {
  // [observation, holds lock, past stop time] -> lost? and why
  const table: [string, boolean, boolean, false | RegExp][] = [];
  for (const late of [false, true]) {
    for (const lock of [true, false]) {
      table.push(["renewed", lock, late, false]);
      table.push(["lease not ours", lock, late, /^its lease expired or was taken over$/]);
      table.push(["lock not held", lock, late, /^this session no longer holds the advisory lock$/]);
    }
    table.push([
      "renewal failed",
      true,
      late,
      /^the lock session failed \(terminating connection due to administrator command\)$/,
    ]);
    table.push([
      "renewal failed",
      false,
      late,
      late ? /^could not renew the lease for 9 s \(terminating connection/ : false,
    ]);
    table.push(["session changed", true, late, /^the lock session closed$/]);
    table.push(["session changed", false, late, late ? /^could not renew the lease for 9 s$/ : false]);
    table.push(["lock session error", true, late, /^the lock session failed \(Connection terminated/]);
    table.push(["lock session error", false, late, late ? /^could not renew/ : false]);
    table.push(["lock session closed", true, late, /^the lock session closed$/]);
    table.push(["lock session closed", false, late, late ? /^could not renew/ : false]);
    // With a lock session the clock alone loses nothing (a paused leader is stalled); without one it does.
    table.push(["stop time", true, late, false]);
    table.push(["stop time", false, late, late ? /^could not renew the lease for 9 s$/ : false]);
  }

  it.each(table)("%s (lock held: %s, past the stop time: %s)", (name, lock, late, lost) => {
    const verdict = judge(state(lock, late), OBSERVATIONS[name]!);
    if (lost === false) {
      expect(verdict.lost).toBe(false);
      if (!verdict.lost) expect(verdict.renewed).toBe(name === "renewed");
    } else {
      expect(verdict.lost).toBe(true);
      if (verdict.lost) expect(verdict.reason).toMatch(lost);
    }
  });

  it("covers every kind of observation", () => {
    const kinds = new Set(Object.values(OBSERVATIONS).map((o) => o.kind));
    expect([...kinds].sort()).toEqual([
      "lock-session-ended",
      "renewal-failed",
      "renewed",
      "session-changed",
      "stop-time",
    ]);
  });

  it("stops the command the kill grace and a margin before the lease can end", () => {
    const killGraceMs = 20_000;
    const leaseMs = leaseFor(killGraceMs);
    expect(leaseMs).toBe(26_500);
    const stop = stopBy(0, leaseMs, killGraceMs);
    expect(leaseMs - (stop + killGraceMs)).toBe(LEASE_MARGIN_MS);
  });
});

describe("a lead's ending", () => {
  const base = { attemptId: 7, task: "migrate", label: "release 3f2c1a9", durationMs: 65_000 };
  const run = (exitCode: number, signal: string | null = null) => ({ exitCode, signal });
  const cases: [
    string,
    LeadFacts,
    Recorded,
    { status: string; outcome: string; exitCode: number; level: string; message: RegExp; notify: string },
  ][] = [
    [
      "succeeded",
      { run: run(0), interruptedBy: undefined, lostReason: undefined },
      "recorded",
      {
        status: "succeeded",
        outcome: "ran",
        exitCode: 0,
        level: "info",
        message: /^migrate succeeded for release 3f2c1a9 in 1 m 5 s \(attempt #7\)\.$/,
        notify: "succeeded",
      },
    ],
    [
      "handled a signal and exited 0",
      { run: run(0), interruptedBy: "SIGTERM", lostReason: undefined },
      "recorded",
      {
        status: "succeeded",
        outcome: "ran",
        exitCode: 0,
        level: "info",
        message: /the command handled SIGTERM and exited 0\.$/,
        notify: "succeeded",
      },
    ],
    [
      "failed",
      { run: run(3), interruptedBy: undefined, lostReason: undefined },
      "recorded",
      {
        status: "failed",
        outcome: "command-failed",
        exitCode: 3,
        level: "error",
        message: /^migrate failed for release 3f2c1a9: the command exited with code 3 \(attempt #7\)\.$/,
        notify: "failed",
      },
    ],
    [
      "killed by a signal",
      { run: run(137, "SIGKILL"), interruptedBy: undefined, lostReason: undefined },
      "recorded",
      {
        status: "failed",
        outcome: "command-failed",
        exitCode: 137,
        level: "error",
        message: /the command was killed by SIGKILL/,
        notify: "failed",
      },
    ],
    [
      "interrupted",
      { run: run(130), interruptedBy: "SIGINT", lostReason: undefined },
      "recorded",
      {
        status: "interrupted",
        outcome: "interrupted",
        exitCode: 130,
        level: "info",
        message:
          /^the command ended after SIGINT \(exited with code 130\); attempt #7 recorded as interrupted\.$/,
        notify: "interrupted",
      },
    ],
    [
      "interrupted before it started",
      { run: undefined, interruptedBy: "SIGTERM", lostReason: undefined },
      "recorded",
      {
        status: "interrupted",
        outcome: "interrupted",
        exitCode: 143,
        level: "info",
        message: /^interrupted by SIGTERM before the command started; nothing was run\.$/,
        notify: "interrupted",
      },
    ],
    [
      "lost",
      { run: run(143), interruptedBy: undefined, lostReason: "the lock session closed" },
      "recorded",
      {
        status: "lost",
        outcome: "lock-lost",
        exitCode: 77,
        level: "error",
        message:
          /^the command was stopped because ownership was lost \(attempt #7, the command exited with code 143\)/,
        notify: "lost",
      },
    ],
    [
      "taken over",
      { run: run(0), interruptedBy: undefined, lostReason: undefined },
      "not-ours",
      {
        status: "succeeded",
        outcome: "lock-lost",
        exitCode: 77,
        level: "error",
        message: /attempt #7 was no longer ours to record/,
        notify: "lost",
      },
    ],
    [
      "not recorded",
      { run: run(0), interruptedBy: undefined, lostReason: undefined },
      "unrecorded",
      {
        status: "succeeded",
        outcome: "lock-lost",
        exitCode: 77,
        level: "error",
        message: /could not be recorded because the database connection was lost/,
        notify: "lost",
      },
    ],
  ];

  it.each(cases)("%s", (_name, facts, recorded, want) => {
    expect(statusOf(facts).status).toBe(want.status);
    const ending = leadEnding({ ...facts, recorded, ...base });
    expect(ending).toMatchObject({
      outcome: want.outcome,
      exitCode: want.exitCode,
      level: want.level,
      event: want.outcome,
      notifyStatus: want.notify,
    });
    expect(ending.message).toMatch(want.message);
    expect(ending.fields.exitCode).toBe(want.exitCode);
  });
});
