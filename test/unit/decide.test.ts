// The decisions, exhaustively: every role x follower mode x versioned x ledger state x owner state x
// timeout x orphan policy; the takeover rule over every lease state; the waiting strategy.

import { describe, expect, it } from "vitest";
import {
  ATTEMPT_STATUSES,
  decide,
  isStalled,
  planWait,
  POLL_POOLED_MAX_MS,
  takeover,
  type AttemptStatus,
  type AttemptView,
  type LeaseView,
  type Situation,
} from "../../src/core/decide.js";
import { FOLLOWER_MODES, ROLES } from "../../src/core/options.js";

const LEASES: Record<string, LeaseView> = {
  alive: { leftMs: 5000, renewedMsAgo: 1000, sessionGone: false, orphans: [] },
  pooled: { leftMs: 5000, renewedMsAgo: 1000, sessionGone: null, orphans: [] },
  "session gone": { leftMs: 5000, renewedMsAgo: 1000, sessionGone: true, orphans: [] },
  expired: { leftMs: -10, renewedMsAgo: 30000, sessionGone: null, orphans: [] },
  "expired, orphans": { leftMs: 0, renewedMsAgo: 30000, sessionGone: true, orphans: [4242] },
  // Its lease ran out but its lock session lives: a paused or frozen leader.
  stalled: { leftMs: -10, renewedMsAgo: 30000, sessionGone: false, orphans: [] },
  "stalled, orphans": { leftMs: -10, renewedMsAgo: 30000, sessionGone: false, orphans: [4242] },
};

function attempt(id: number, status: AttemptStatus, lease?: LeaseView): AttemptView {
  return {
    id,
    status,
    releaseId: "3f2c1a9",
    app: "s-app",
    pid: 4211,
    host: "web.1",
    role: "auto",
    startedAt: "2026-11-21T12:01:07.000Z",
    heartbeatAt: "2026-11-21T12:01:30.000Z",
    exitCode: status === "succeeded" ? 0 : status === "failed" ? 3 : null,
    lease: status === "running" ? (lease ?? LEASES.alive ?? null) : null,
    // A lock session exists where the lease says whether it is gone (null: none, a pooler).
    lockBackendPid: status === "running" && (lease ?? LEASES.alive)?.sessionGone !== null ? 7001 : null,
  };
}

/** Every ledger state: no attempt; each finished status seen at start or not; running in each lease state. */
function* situations(): Generator<Situation> {
  const latests: { latest: AttemptView | undefined; finishedBeforeStart: number | undefined }[] = [
    { latest: undefined, finishedBeforeStart: undefined },
  ];
  for (const status of ATTEMPT_STATUSES) {
    if (status === "running") {
      for (const lease of Object.values(LEASES))
        latests.push({ latest: attempt(7, status, lease), finishedBeforeStart: undefined });
      continue;
    }
    latests.push({ latest: attempt(7, status), finishedBeforeStart: undefined });
    latests.push({ latest: attempt(7, status), finishedBeforeStart: 7 });
  }
  const holders = [undefined, ...Object.values(LEASES).map((lease) => attempt(9, "running", lease))];
  for (const role of ROLES)
    for (const followerMode of FOLLOWER_MODES)
      for (const versioned of [true, false])
        for (const { latest, finishedBeforeStart } of latests)
          for (const holder of holders)
            for (const timedOut of [false, true])
              for (const orphanPolicy of ["wait", "terminate"] as const)
                yield {
                  role,
                  followerMode,
                  versioned,
                  latest,
                  holder,
                  finishedBeforeStart,
                  timedOut,
                  orphanPolicy,
                };
}

const all = [...situations()];
const waitedOn = (s: Situation) =>
  s.versioned &&
  s.latest !== undefined &&
  s.latest.status !== "running" &&
  s.latest.id !== s.finishedBeforeStart;
const skipping = (s: Situation) => s.role === "follower" && s.followerMode === "skip";

describe("decide", () => {
  it("covers the whole space", () => {
    // 3 roles x 2 modes x 2 versioned x (1 + 6 x 2 + 7 running) ledger states x 8 owners x 2 timeouts x 2 policies
    expect(all.length).toBe(3 * 2 * 2 * 20 * 8 * 2 * 2);
  });

  it("a follower in skip mode always skips, whatever the ledger says", () => {
    for (const s of all.filter(skipping)) expect(decide(s)).toEqual({ action: "skip" });
  });

  it("a follower never claims, takes over or ends sessions", () => {
    for (const s of all.filter((s) => s.role === "follower")) {
      expect(["claim", "abandon", "end-orphans", "end-stalled"]).not.toContain(decide(s).action);
    }
  });

  it("claims only when no attempt owns the lock, never after a success, and only as leader or auto", () => {
    for (const s of all) {
      if (decide(s).action !== "claim") continue;
      expect(s.holder).toBeUndefined();
      expect(s.role).not.toBe("follower");
      if (s.versioned) expect(s.latest?.status).not.toBe("succeeded");
    }
  });

  it("a release that already succeeded is done for every role, without running", () => {
    for (const s of all.filter((s) => s.versioned && s.latest?.status === "succeeded" && !skipping(s))) {
      const d = decide(s);
      expect(d.action).toBe("done");
      if (d.action === "done") expect(d.reason).toBe(waitedOn(s) ? "leader-succeeded" : "already-succeeded");
    }
  });

  it("never takes over before the owner's lease has expired by the database clock, nor while its lock session or its command is connected", () => {
    for (const s of all) {
      const d = decide(s);
      if (d.action === "abandon") {
        expect(d.attempt.lease?.leftMs).toBeLessThanOrEqual(0);
        expect(d.attempt.lease?.orphans).toEqual([]);
        expect(d.attempt.lease?.sessionGone).not.toBe(false);
      }
      if (d.action === "end-orphans") {
        expect(s.orphanPolicy).toBe("terminate");
        expect(d.attempt.lease?.leftMs).toBeLessThanOrEqual(0);
        expect(d.attempt.lease?.sessionGone).not.toBe(false);
      }
      // A stalled owner's lock session is ended only on request (--orphan-sessions terminate).
      if (d.action === "end-stalled") {
        expect(s.orphanPolicy).toBe("terminate");
        expect(d.attempt.lease).toMatchObject({ sessionGone: false });
        expect(d.attempt.lease?.leftMs).toBeLessThanOrEqual(0);
        expect(d.pid).toBe(d.attempt.lockBackendPid);
      }
    }
    // A stalled owner (lease out, lock session alive) is waited for by default, never taken over.
    for (const s of all.filter(
      (s) => s.role !== "follower" && s.holder !== undefined && isStalled(s.holder) && !s.timedOut,
    )) {
      if (s.versioned && s.latest?.status === "succeeded") continue;
      if (waitedOn(s) && s.latest?.status === "failed" && s.role === "auto") continue;
      expect(decide(s)).toMatchObject(
        s.orphanPolicy === "terminate" ? { action: "end-stalled" } : { action: "wait", until: "stalled" },
      );
    }
    // A lost session alone (lease left) makes leader and auto wait for the lease, not take over.
    for (const s of all.filter(
      (s) =>
        s.role !== "follower" &&
        s.holder?.lease?.sessionGone === true &&
        s.holder.lease.leftMs > 0 &&
        !s.timedOut,
    )) {
      if (s.versioned && s.latest?.status === "succeeded") continue;
      if (waitedOn(s) && s.latest?.status === "failed" && s.role === "auto") continue;
      expect(decide(s)).toMatchObject({ action: "wait", until: "lease" });
    }
  });

  it("auto and follower processes that waited on a failed attempt report it (76); a leader runs again", () => {
    for (const s of all.filter(
      (s) => waitedOn(s) && s.latest?.status === "failed" && s.followerMode === "wait",
    )) {
      const d = decide(s);
      if (s.role === "leader") {
        expect(d.action).not.toBe("fail");
        if (s.holder === undefined) expect(d.action).toBe("claim");
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
      if (s.holder === undefined) expect(d.action).toBe("claim");
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
      else if (s.holder === undefined) expect(d.action).toBe("claim");
      else expect(d.action).not.toBe("fail");
    }
  });

  it("a follower reports a running attempt whose owner is gone as abandoned, and waits on a live one", () => {
    for (const s of all.filter(
      (s) =>
        s.role === "follower" && s.followerMode === "wait" && s.versioned && s.latest?.status === "running",
    )) {
      const lease = s.latest?.lease;
      // Gone: its lock session ended, or, without one (a pooler), its lease ran out. A stalled one is waited for.
      const gone =
        lease != null && (lease.sessionGone === true || (lease.leftMs <= 0 && lease.sessionGone === null));
      const stalled = lease != null && lease.leftMs <= 0 && lease.sessionGone === false;
      const d = decide(s);
      if (gone) expect(d).toMatchObject({ action: "fail", reason: "abandoned" });
      else if (s.timedOut) expect(d).toMatchObject({ action: "timeout", on: s.latest });
      else expect(d).toMatchObject({ action: "wait", on: s.latest, until: stalled ? "stalled" : "outcome" });
    }
  });

  it("unversioned runs ignore the ledger's outcomes: leader and auto take turns on the lock", () => {
    for (const s of all.filter((s) => !s.versioned && s.role !== "follower")) {
      const d = decide(s);
      if (s.holder === undefined) expect(d.action).toBe("claim");
      else expect(["wait", "timeout", "abandon", "end-orphans", "end-stalled"]).toContain(d.action);
    }
  });

  it("a timed-out leader or auto process with an owner in the way times out (75)", () => {
    for (const s of all.filter((s) => s.timedOut && s.role !== "follower" && s.holder !== undefined)) {
      const d = decide(s);
      if (d.action !== "done" && d.action !== "fail") expect(d).toEqual({ action: "timeout", on: s.holder });
    }
  });

  it("reads as the contract for the common cases", () => {
    const base: Situation = {
      role: "auto",
      followerMode: "wait",
      versioned: true,
      latest: undefined,
      holder: undefined,
      finishedBeforeStart: undefined,
      timedOut: false,
      orphanPolicy: "wait",
    };
    const running = attempt(1, "running");
    expect(decide(base)).toEqual({ action: "claim" });
    expect(decide({ ...base, latest: running, holder: running })).toEqual({
      action: "wait",
      on: running,
      until: "outcome",
    });
    const expired = attempt(1, "running", LEASES.expired);
    expect(decide({ ...base, latest: expired, holder: expired })).toEqual({
      action: "abandon",
      attempt: expired,
    });
    expect(decide({ ...base, role: "follower", latest: undefined })).toEqual({
      action: "wait",
      on: undefined,
      until: "outcome",
    });
    expect(decide({ ...base, role: "leader", holder: running, timedOut: true })).toEqual({
      action: "timeout",
      on: running,
    });
  });
});

describe("takeover", () => {
  it("waits out the lease, then a stalled leader's lock session, then the command's sessions (or ends them on request), then abandons", () => {
    for (const [name, lease] of Object.entries(LEASES)) {
      for (const policy of ["wait", "terminate"] as const) {
        const step = takeover(attempt(3, "running", lease), policy);
        if (lease.leftMs > 0) expect(step, name).toEqual({ step: "wait-lease", leftMs: lease.leftMs });
        else if (lease.sessionGone === false)
          expect(step, name).toEqual(
            policy === "terminate" ? { step: "end-stalled", pid: 7001 } : { step: "wait-stalled" },
          );
        else if (lease.orphans.length > 0)
          expect(step, name).toEqual({
            step: policy === "terminate" ? "end-orphans" : "wait-orphans",
            pids: lease.orphans,
          });
        else expect(step, name).toEqual({ step: "abandon" });
      }
    }
  });
});

describe("planWait", () => {
  it("listens only on a proven session of its own, and gives a crowded server its connection back", () => {
    for (const sessionProven of [true, false])
      for (const crowded of [true, false]) {
        const plan = planWait({ sessionProven, crowded, round: 3, leaseLeftMs: undefined, leftMs: 60_000 });
        expect(plan.listen).toBe(sessionProven && !crowded);
        expect(plan.holdConnection).toBe(!crowded);
      }
  });

  it("through a pooler polls at least every 500 ms, so an outcome is seen within a second", () => {
    for (let round = 0; round < 50; round++) {
      const plan = planWait({
        sessionProven: false,
        crowded: false,
        round,
        leaseLeftMs: undefined,
        leftMs: 60_000,
      });
      expect(plan.sleepMs).toBeLessThanOrEqual(POLL_POOLED_MAX_MS);
      expect(plan.sleepMs).toBeGreaterThan(0);
    }
  });

  it("never sleeps past the timeout, and wakes when an owner's lease ends", () => {
    for (let round = 0; round < 30; round++) {
      for (const leftMs of [0, 5, 800, 60_000]) {
        const plan = planWait({
          sessionProven: true,
          crowded: round % 2 === 0,
          round,
          leaseLeftMs: 40,
          leftMs,
        });
        expect(plan.sleepMs).toBeLessThanOrEqual(Math.min(leftMs, 60));
        expect(plan.sleepMs).toBeGreaterThanOrEqual(0);
      }
    }
  });
});
