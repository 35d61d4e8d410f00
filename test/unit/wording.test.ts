// Sentences that must say what happens (issue 23, item 6): the wait for a gone leader's lease, the
// abandoned notification and the taker's line (the same words), and "tried for" of a connect timeout.

import { describe, expect, it } from "vitest";
import type { AttemptView } from "../../src/core/decide.js";
import { formatDuration } from "../../src/core/duration.js";
import { buildNotification, type NotifyEvent } from "../../src/core/notification.js";
import { ABANDONED_BECAUSE } from "../../src/core/ownership.js";
import { nextTryIn } from "../../src/db/connect.js";
import { waitNote } from "../../src/run/progress.js";

const gone: AttemptView = {
  id: 1,
  status: "running",
  releaseId: "k1",
  app: "a",
  pid: 4211,
  host: "run.1",
  role: "auto",
  startedAt: "2026-12-04T12:00:00.000Z",
  heartbeatAt: "2026-12-04T12:00:01.000Z",
  exitCode: null,
  lockBackendPid: 2864,
  lease: { leftMs: 6000, renewedMsAgo: 1500, sessionGone: true, orphans: [] },
};

describe("waiting for a gone leader's lease", () => {
  it("does not promise that the command is stopped by then: the takeover waits for its sessions too", () => {
    const note = waitNote("attempt #1 by a", gone, "lease", []);
    expect(note.event).toBe("stale-owner");
    expect(note.message).toBe(
      "attempt #1 by a: its leader's session is gone; waiting 6 s for its lease to expire, then for any session its command still has connected to end, before taking over.",
    );
    expect(note.message).not.toMatch(/stopped by then/);
  });

  it("names the sessions it then waits for", () => {
    const note = waitNote(
      "attempt #1 by a",
      { ...gone, lease: { ...gone.lease!, leftMs: 0 } },
      "orphans",
      [77],
    );
    expect(note).toMatchObject({ event: "orphan-sessions" });
    expect(note.message).toMatch(/its lease expired but its command is still connected \(backend pid 77\)/);
  });
});

describe("an abandoned attempt", () => {
  it("the notification says what the takeover checked, in the taker's words", () => {
    const event: NotifyEvent = {
      kind: "attempt-finished",
      releaseId: "k1",
      task: "migrate",
      app: "a",
      role: "auto",
      status: "abandoned",
      exitCode: null,
      durationMs: 62_000,
      attemptId: 1,
      host: "run.1",
      outputTail: null,
    };
    const text = buildNotification(event, (t) => t).text;
    expect(text).toContain(`was ABANDONED: ${ABANDONED_BECAUSE} (after 1 m 2 s)`);
    expect(ABANDONED_BECAUSE).toBe("its lease expired with no session of its leader or its command left");
    expect(text).not.toMatch(/lock session is gone/);
  });
});

describe("retrying a connection within --connect-timeout", () => {
  it("waits at most to the end of the budget, and gives up only once it is spent", () => {
    expect(nextTryIn(100, 200, 2000)).toBe(200);
    expect(nextTryIn(1500, 800, 2000)).toBe(500); // the last try is made at 2 s, not skipped at 1.5 s
    expect(nextTryIn(2000, 100, 2000)).toBeUndefined();
    expect(nextTryIn(2300, 100, 2000)).toBeUndefined();
  });

  it("so a 2 s timeout says it tried for 2 s: the give-up comes at the budget, not before", () => {
    // Replays the loop with the largest jitter: each wait, then a try that fails at once.
    let elapsed = 0;
    for (let attempt = 1; ; attempt++) {
      const wait = nextTryIn(elapsed, Math.min(5000, 200 * 2 ** attempt), 2000);
      if (wait === undefined) break;
      elapsed += wait;
    }
    expect(formatDuration(elapsed)).toBe("2 s");
  });
});
