// /api/releases from records built in memory: every field of the ledger's records kept, plus the texts
// the status page shows by the tool's own rules (shortReleaseId, formatDuration), durations of a
// running attempt as of the read, the release's time axis, and ?limit= parsing.

import { describe, expect, it } from "vitest";
import { describeBlock, type Blocked } from "../../src/core/blocking.js";
import { formatDuration } from "../../src/core/duration.js";
import type { AttemptWithFollowers, FollowerRecord } from "../../src/core/records.js";
import { shortReleaseId } from "../../src/core/release-id.js";
import type { ReleaseRecord } from "../../src/core/releases.js";
import { toReleaseResponse, toReleasesResponse } from "../../src/operator/releases-api.js";
import { MAX_LIMIT, parseLimit } from "../../src/operator/serve.js";

const NOW = Date.parse("2025-11-21T12:30:00.000Z");
const at = (msBeforeNow: number) => new Date(NOW - msBeforeNow).toISOString();
const SHA256 = "3f2c1a9e5b7d4c2a8e1f0b9d6c5a4e3f2d1c0b9a8e7f6a5b4c3d2e1f0a9b8c7d";

function follower(overrides: Partial<FollowerRecord> = {}): FollowerRecord {
  return {
    id: 1,
    app: "s-admin",
    host: "web.2",
    pid: 4212,
    role: "follower",
    mode: "wait",
    outcome: "succeeded",
    exitCode: 0,
    waitedMs: 65_000,
    recordedAt: at(60_000),
    startedAt: at(125_000),
    attemptId: 7,
    releaseId: SHA256,
    task: "migrate",
    ...overrides,
  };
}

function attempt(overrides: Partial<AttemptWithFollowers> = {}): AttemptWithFollowers {
  return {
    id: 7,
    releaseId: SHA256,
    task: "migrate",
    lockName: "release-orchestrator",
    tries: [],
    app: "s-app",
    host: "web.1",
    pid: 4211,
    role: "leader",
    command: "bundle exec rake db:migrate",
    status: "succeeded",
    exitCode: 0,
    signal: null,
    startedAt: at(130_000),
    heartbeatAt: at(61_000),
    finishedAt: at(60_000),
    durationMs: 65_000,
    outputTail: "== AddBioToUsers: migrated\n",
    lockBackendPid: 901,
    lease: null,
    blocked: null,
    followers: [follower()],
    ...overrides,
  };
}

function release(attempts: AttemptWithFollowers[], others: FollowerRecord[] = []): ReleaseRecord {
  const first = attempts[0]!;
  return {
    releaseId: first.releaseId,
    task: first.task,
    leader: first.app,
    status: attempts.at(-1)!.status,
    startedAt: first.startedAt,
    attempts,
    others,
  };
}

describe("/api/releases", () => {
  it("keeps every field of the ledger's records and adds the tool's texts", () => {
    const record = release(
      [attempt()],
      [follower({ id: 2, app: "s-worker", outcome: "skipped", waitedMs: 850 })],
    );
    const response = toReleaseResponse(record, NOW);
    expect(response).toMatchObject(record);
    expect(response.shortReleaseId).toBe("3f2c1a9");
    expect(response.attempts[0]?.durationText).toBe("1 m 5 s");
    expect(response.attempts[0]?.followers[0]?.waitedText).toBe("1 m 5 s");
    expect(response.others[0]?.waitedText).toBe("850 ms");
    expect(response.attempts[0]?.blockedText).toBeNull();
  });

  it("shortens the release id as the tool does: 40 or 64 hex digits, either case; anything else as it is", () => {
    const ids = [SHA256, SHA256.slice(0, 40), SHA256.toUpperCase(), SHA256.slice(0, 63), "v1.2.3", "8b41d07"];
    const shown = ids.map(
      (id) => toReleaseResponse(release([attempt({ releaseId: id })]), NOW).shortReleaseId,
    );
    expect(shown).toEqual(["3f2c1a9", "3f2c1a9", "3F2C1A9", SHA256.slice(0, 63), "v1.2.3", "8b41d07"]);
    expect(shown).toEqual(ids.map(shortReleaseId));
    expect(toReleaseResponse(release([attempt({ releaseId: null })]), NOW).shortReleaseId).toBeNull();
  });

  it("times a running attempt until the read, and a finished one without durationMs by its timestamps", () => {
    const running = attempt({ status: "running", exitCode: null, finishedAt: null, durationMs: null });
    const waiting = follower({ outcome: "waiting", exitCode: null, waitedMs: 754_000, recordedAt: at(1000) });
    const response = toReleaseResponse(
      release([{ ...running, startedAt: at(754_000), followers: [waiting] }]),
      NOW,
    );
    expect(response.attempts[0]?.durationText).toBe("12 m 34 s");
    expect(response.attempts[0]?.followers[0]?.waitedText).toBe("12 m 34 s");
    expect(response.span).toEqual({ from: at(755_000), to: at(0), text: formatDuration(755_000) });

    // What blocks it, as the run says it, with its waits counted until the read (not the last renewal).
    const blocked: Blocked = {
      pid: 9452,
      since: at(8000),
      lockType: "relation",
      mode: "AccessExclusiveLock",
      relation: "users",
      seenAt: at(3000),
      blocker: {
        pid: 9410,
        applicationName: "web.1",
        state: "idle in transaction",
        stateSince: at(9000),
        xactStart: at(9000),
        waiting: false,
      },
    };
    const stuck = toReleaseResponse(release([{ ...running, blocked }]), NOW).attempts[0]?.blockedText;
    expect(stuck).toBe(describeBlock(blocked, at(0)));
    expect(stuck).toContain("has waited 8 s for AccessExclusiveLock on users, blocked by backend pid 9410");

    const interrupted = attempt({ status: "interrupted", exitCode: null, durationMs: null, followers: [] });
    const ended = toReleaseResponse(
      release([{ ...interrupted, startedAt: at(3_725_000), finishedAt: at(5000) }]),
      NOW,
    );
    expect(ended.attempts[0]?.durationText).toBe("1 h 2 m");
  });

  it("spans a release from its first start or wait to its last end, as the page's time axis", () => {
    // s-admin started waiting 5 s before s-app's attempt began (it found the lock taken) and ended with it.
    const early = follower({ waitedMs: 75_000, recordedAt: at(60_000) });
    const response = toReleaseResponse(release([attempt({ followers: [early] })]), NOW);
    expect(response.span).toEqual({ from: at(135_000), to: at(60_000), text: "1 m 15 s" });
    const retried = toReleaseResponse(
      release([
        attempt({ followers: [] }),
        attempt({ id: 8, startedAt: at(50_000), finishedAt: at(20_000) }),
      ]),
      NOW,
    );
    expect(retried.span).toEqual({ from: at(130_000), to: at(20_000), text: "1 m 50 s" });
  });

  it("says who holds the lock, or null", () => {
    const head = {
      schema: "release_orchestrator",
      limit: 20,
      lockName: "release-orchestrator",
      now: NOW,
      phases: [],
    };
    const holder = {
      pid: 901,
      applicationName: "release-orchestrator s-app",
      state: "idle",
      backendStart: at(130_000),
      stateChange: at(1000),
      clientAddr: null,
    };
    const held = toReleasesResponse({ ...head, holder, releases: [release([attempt()])] });
    expect(held.lock).toEqual({
      name: "release-orchestrator",
      holder: { pid: 901, applicationName: "release-orchestrator s-app", since: at(130_000) },
    });
    expect(held.releases.map((r) => r.shortReleaseId)).toEqual(["3f2c1a9"]);
    const free = toReleasesResponse({ ...head, holder: undefined, releases: [] });
    expect(free).toEqual({
      schema: "release_orchestrator",
      limit: 20,
      lock: { name: "release-orchestrator", holder: null },
      phases: [],
      releases: [],
    });
  });

  it("reads ?limit= as a whole number from 1 to MAX_LIMIT, or the configured default", () => {
    expect(parseLimit(null, 20)).toBe(20);
    expect(parseLimit("", 5000)).toBe(MAX_LIMIT);
    expect(parseLimit("7", 20)).toBe(7);
    for (const bad of ["0", "-1", "1.5", "lots", "1001", "01"]) {
      expect(parseLimit(bad, 20)).toEqual({ error: `limit must be a whole number from 1 to ${MAX_LIMIT}` });
    }
  });
});
