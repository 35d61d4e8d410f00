// The decision, exhaustively: every role x follower mode x versioned x lock state x ledger state x timeout.

import { describe, expect, it } from "vitest";
import {
  ATTEMPT_STATUSES,
  decide,
  type AttemptStatus,
  type AttemptView,
  type LockState,
  type Situation,
} from "../../src/decide.js";
import { FOLLOWER_MODES, ROLES } from "../../src/options.js";

const LOCKS: LockState[] = ["held", "busy", "free", "not-tried"];

function attempt(id: number, status: AttemptStatus): AttemptView {
  return {
    id,
    status,
    app: "s-app",
    pid: 4211,
    host: "web.1",
    role: "auto",
    startedAt: new Date("2026-11-21T12:01:07Z"),
    finishedAt: status === "running" ? null : new Date("2026-11-21T12:01:41Z"),
    exitCode: status === "succeeded" ? 0 : status === "failed" ? 3 : null,
  };
}

/** Every situation: latest is none, or one attempt of each status either seen finished at start or not. */
function* situations(): Generator<Situation> {
  const latests: { latest: AttemptView | undefined; finishedBeforeStart: number | undefined }[] = [
    { latest: undefined, finishedBeforeStart: undefined },
  ];
  for (const status of ATTEMPT_STATUSES) {
    latests.push({ latest: attempt(7, status), finishedBeforeStart: undefined });
    if (status !== "running") latests.push({ latest: attempt(7, status), finishedBeforeStart: 7 });
  }
  for (const role of ROLES)
    for (const followerMode of FOLLOWER_MODES)
      for (const versioned of [true, false])
        for (const lock of LOCKS)
          for (const { latest, finishedBeforeStart } of latests)
            for (const timedOut of [false, true])
              yield { role, followerMode, versioned, lock, latest, finishedBeforeStart, timedOut };
}

const all = [...situations()];
const waitedOn = (s: Situation) =>
  s.versioned &&
  s.latest !== undefined &&
  s.latest.status !== "running" &&
  s.latest.id !== s.finishedBeforeStart;

describe("decide", () => {
  it("covers the whole space", () => {
    // 3 roles x 2 modes x 2 versioned x 4 locks x (1 + 1 + 5 x 2) ledger states x 2 timeouts
    expect(all.length).toBe(3 * 2 * 2 * 4 * 12 * 2);
  });

  it("a follower in skip mode always skips, whatever the ledger says", () => {
    for (const s of all.filter((s) => s.role === "follower" && s.followerMode === "skip")) {
      expect(decide(s)).toEqual({ action: "skip" });
    }
  });

  it("a follower never runs the command and never takes the lock", () => {
    for (const s of all.filter((s) => s.role === "follower")) {
      expect(["run", "take-lock"]).not.toContain(decide(s).action);
    }
  });

  it("runs only while holding the lock, and only as leader or auto", () => {
    for (const s of all) {
      const d = decide(s);
      if (d.action === "run") {
        expect(s.lock).toBe("held");
        expect(s.role).not.toBe("follower");
      }
    }
  });

  it("a release that already succeeded is done for every role, without running", () => {
    for (const s of all.filter(
      (s) =>
        s.versioned &&
        s.latest?.status === "succeeded" &&
        !(s.role === "follower" && s.followerMode === "skip"),
    )) {
      const d = decide(s);
      expect(d.action).toBe("done");
      if (d.action === "done") expect(d.reason).toBe(waitedOn(s) ? "leader-succeeded" : "already-succeeded");
    }
  });

  it("auto and follower processes that waited on a failed attempt report it (76); a leader runs again", () => {
    for (const s of all.filter(
      (s) => waitedOn(s) && s.latest?.status === "failed" && s.followerMode === "wait",
    )) {
      const d = decide(s);
      if (s.role === "leader") {
        expect(d.action).not.toBe("fail");
        if (s.lock === "held") expect(d.action).toBe("run");
      } else {
        expect(d).toMatchObject({ action: "fail", reason: "failed" });
      }
    }
  });

  it("an attempt that failed before this process started does not block a new invocation", () => {
    for (const s of all.filter(
      (s) => s.latest?.status === "failed" && s.finishedBeforeStart === 7 && s.role !== "follower",
    )) {
      const d = decide(s);
      expect(d.action).not.toBe("fail");
      if (s.lock === "held") expect(d.action).toBe("run");
    }
    // A waiting follower keeps waiting for a new attempt instead of reporting the old failure.
    for (const s of all.filter(
      (s) =>
        s.latest?.status === "failed" &&
        s.finishedBeforeStart === 7 &&
        s.role === "follower" &&
        s.followerMode === "wait" &&
        s.versioned,
    )) {
      expect(decide(s).action).toBe(s.timedOut ? "timeout" : "wait");
    }
  });

  it("an attempt that was interrupted, lost or abandoned is taken over by leader/auto, reported by followers", () => {
    for (const s of all.filter(
      (s) =>
        waitedOn(s) &&
        ["interrupted", "lost", "abandoned"].includes(s.latest?.status ?? "") &&
        s.followerMode === "wait",
    )) {
      const d = decide(s);
      if (s.role === "follower") expect(d).toMatchObject({ action: "fail", reason: "stopped" });
      else
        expect(d.action).toBe(
          s.lock === "held" ? "run" : s.timedOut ? "timeout" : s.lock === "busy" ? "wait" : "take-lock",
        );
    }
  });

  it("a follower that sees a running attempt while nobody holds the lock reports it abandoned", () => {
    for (const s of all.filter(
      (s) =>
        s.role === "follower" && s.followerMode === "wait" && s.versioned && s.latest?.status === "running",
    )) {
      const d = decide(s);
      if (s.lock === "free") expect(d).toMatchObject({ action: "fail", reason: "abandoned" });
      else expect(d).toMatchObject({ action: s.timedOut ? "timeout" : "wait", on: s.latest });
    }
  });

  it("unversioned runs ignore the ledger: leader and auto run in turn, each when it holds the lock", () => {
    for (const s of all.filter((s) => !s.versioned && s.role !== "follower")) {
      const d = decide(s);
      const expected =
        s.lock === "held" ? "run" : s.timedOut ? "timeout" : s.lock === "busy" ? "wait" : "take-lock";
      expect(d.action).toBe(expected);
    }
  });

  it("a timed-out process that has no outcome and no lock times out (75)", () => {
    for (const s of all.filter(
      (s) => s.timedOut && s.lock !== "held" && !(s.role === "follower" && s.followerMode === "skip"),
    )) {
      const d = decide(s);
      if (d.action !== "done" && d.action !== "fail") expect(d.action).toBe("timeout");
    }
  });

  it("reads as the contract for the common cases", () => {
    const base: Situation = {
      role: "auto",
      followerMode: "wait",
      versioned: true,
      lock: "not-tried",
      latest: undefined,
      finishedBeforeStart: undefined,
      timedOut: false,
    };
    expect(decide(base)).toEqual({ action: "take-lock" });
    expect(decide({ ...base, lock: "held" })).toEqual({ action: "run", takeOver: undefined });
    expect(decide({ ...base, lock: "busy", latest: attempt(1, "running") })).toEqual({
      action: "wait",
      on: attempt(1, "running"),
    });
    expect(decide({ ...base, lock: "held", latest: attempt(1, "running") })).toEqual({
      action: "run",
      takeOver: attempt(1, "running"),
    });
    expect(decide({ ...base, role: "follower", lock: "busy", latest: undefined })).toEqual({
      action: "wait",
      on: undefined,
    });
    expect(decide({ ...base, role: "leader", lock: "busy", timedOut: true })).toEqual({
      action: "timeout",
      on: undefined,
    });
  });
});
