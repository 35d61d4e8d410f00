// Ownership of a claimed attempt, in one scoped place: the lease is renewed by single statements
// (fenced by the attempt id) and, on a session proven to be our own, the advisory lock is held as the
// signal of a dead leader. What is taken here is released here; `lost` fires when ownership can no
// longer be proven, early enough that the command is stopped before the lease can expire.

import { setTimeout as sleep } from "node:timers/promises";
import { describeBlock, sameBlock, type Blocked } from "../core/blocking.js";
import { isConnectionLoss } from "../db/connect.js";
import { formatDuration } from "../core/duration.js";
import type { AttemptOutcome } from "../db/ledger/attempts.js";
import { unlock } from "../db/session.js";
import { fields, type RunContext } from "./context.js";
import type { Link } from "./link.js";

/** How often the leader renews its lease, and how long one renewal may take. */
export const RENEW_EVERY_MS = 1000;
export const RENEW_TIMEOUT_MS = 1500;
/** Time between the command's forced end and the lease's end, by the leader's clock. */
export const LEASE_MARGIN_MS = 3000;

/**
 * The lease a leader takes: after its last renewal, a leader that can renew no more stops its command
 * (SIGTERM, then SIGKILL after the kill grace) and still leaves LEASE_MARGIN_MS before anyone may take over.
 */
export function leaseFor(killGraceMs: number): number {
  return 2 * RENEW_EVERY_MS + RENEW_TIMEOUT_MS + killGraceMs + LEASE_MARGIN_MS;
}

export type Recorded = "recorded" | "not-ours" | "unrecorded";

export interface Ownership {
  /** Aborted, with a sentence as its reason, once ownership can no longer be proven. */
  readonly lost: AbortSignal;
  /** Whether the advisory lock is held on a proven session (status shows it; its loss stops the command). */
  readonly lockHeld: boolean;
  /** Records the outcome, fenced by the attempt id; on a fresh connection if ours died. */
  finish(outcome: AttemptOutcome): Promise<Recorded>;
}

export async function withOwnership<T>(
  ctx: RunContext,
  link: Link,
  attemptId: number,
  leaseMs: number,
  fn: (ownership: Ownership) => Promise<T>,
): Promise<T> {
  const { reporter, ledger, config } = ctx;
  const lost = new AbortController();
  const lose = (reason: string) => {
    if (!lost.signal.aborted) lost.abort(reason);
  };
  let lastRenewed = Date.now(); // the lease was taken by the claim, just before
  const stopBy = () => lastRenewed + leaseMs - config.killGraceMs - LEASE_MARGIN_MS;

  const client = await link.client();
  let lockHeld = false;
  if (link.proven) {
    try {
      lockHeld = await ledger.attachLock(client, attemptId);
      if (!lockHeld)
        reporter.warn(
          `another session holds the advisory lock "${config.lockName}" (run release-orchestrator doctor to see which); the lease alone protects this run.`,
        );
    } catch (error) {
      if (!isConnectionLoss(error)) throw error;
      await link.drop();
    }
  }
  const onLockSessionError = (error: Error) => lose(`the lock session failed (${error.message})`);
  const onLockSessionEnd = () => lose("the lock session closed");
  if (lockHeld) {
    client.on("error", onLockSessionError);
    client.on("end", onLockSessionEnd);
  }

  const blocking = new BlockReport(ctx, attemptId);
  let renewing = true;
  const stopRenewing = new AbortController();
  const renewals = (async () => {
    while (renewing && !lost.signal.aborted) {
      await sleep(RENEW_EVERY_MS, undefined, { signal: stopRenewing.signal, ref: false }).catch(() => {});
      if (!renewing || lost.signal.aborted) return;
      const sent = Date.now();
      try {
        const current = await link.client(
          Math.max(500, stopBy() - Date.now()),
          Math.max(500, stopBy() - Date.now()),
        );
        if (lockHeld && current !== client) {
          lose("the lock session closed");
          return;
        }
        const renewal = await withTimeout(ledger.renew(current, attemptId), RENEW_TIMEOUT_MS);
        if (!renewal.owned) lose("its lease expired or was taken over");
        else if (!renewal.lockHeld) lose("this session no longer holds the advisory lock");
        else {
          lastRenewed = sent;
          blocking.seen(renewal.blocked);
        }
      } catch (error) {
        if (lockHeld) {
          lose(`the lock session did not answer (${(error as Error).message})`);
          return;
        }
        await link.drop();
        if (Date.now() >= stopBy())
          lose(
            `could not renew the lease for ${formatDuration(Date.now() - lastRenewed)} (${(error as Error).message})`,
          );
        else reporter.debug(`lease renewal failed (${(error as Error).message}); retrying`);
      }
      if (Date.now() >= stopBy())
        lose(`could not renew the lease for ${formatDuration(Date.now() - lastRenewed)}`);
    }
  })();

  const ownership: Ownership = {
    lost: lost.signal,
    lockHeld,
    async finish(outcome) {
      renewing = false;
      stopRenewing.abort();
      await renewals;
      if (!lost.signal.aborted) {
        try {
          return (await ledger.finish(await link.client(), attemptId, outcome)) ? "recorded" : "not-ours";
        } catch (error) {
          if (!isConnectionLoss(error)) throw error;
          await link.drop();
        }
      }
      // Our connection is gone: record on a fresh one, still fenced by the attempt id.
      try {
        const fresh = await link.open(5000);
        try {
          return (await ledger.finish(fresh, attemptId, outcome)) ? "recorded" : "not-ours";
        } finally {
          await fresh.end().catch(() => {});
        }
      } catch (error) {
        reporter.warn(
          `could not record attempt #${attemptId} as ${outcome.status}: ${(error as Error).message}`,
        );
        return "unrecorded";
      }
    },
  };

  try {
    return await fn(ownership);
  } finally {
    renewing = false;
    stopRenewing.abort();
    await renewals;
    client.removeListener("error", onLockSessionError);
    client.removeListener("end", onLockSessionEnd);
    if (lockHeld && !lost.signal.aborted) {
      try {
        if (!(await unlock(client, ctx.key)))
          reporter.warn("the advisory lock was not held when releasing it.");
      } catch (error) {
        reporter.warn(
          `could not release the advisory lock cleanly (${(error as Error).message}); it is freed when the session ends.`,
        );
      }
    }
  }
}

/** How often a block that lasts is said again (with its new duration). */
const BLOCK_REMINDER_MS = 30_000;

/** Says when the command becomes blocked on a lock, by whom, again every 30 s while it lasts, and when it ends. */
class BlockReport {
  private current: Blocked | null = null;
  private saidAt = 0;

  constructor(
    private readonly ctx: RunContext,
    private readonly attemptId: number,
  ) {}

  seen(blocked: Blocked | null): void {
    const { reporter } = this.ctx;
    const changed = !sameBlock(this.current, blocked);
    if (blocked !== null && (changed || Date.now() - this.saidAt >= BLOCK_REMINDER_MS)) {
      reporter.warn(
        `blocked: ${describeBlock(blocked)}`,
        fields(this.ctx, "blocked", this.attemptId, { blocked }),
      );
      this.saidAt = Date.now();
    } else if (blocked === null && this.current !== null) {
      reporter.info(
        `no longer blocked: backend pid ${this.current.pid} got its lock or stopped waiting.`,
        fields(this.ctx, "unblocked", this.attemptId),
      );
    }
    this.current = blocked;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no answer from the database within ${formatDuration(ms)}`)),
      ms,
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
