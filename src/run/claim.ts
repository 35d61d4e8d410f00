// A claimed attempt in one scope: the claim that starts the lease, the advisory lock on a session
// proven to be our own, the renewals, and in `finally` the attempt recorded if nothing recorded it
// (interrupted, or lost) and the lock released. What is taken here is released here; `lost` fires when
// ownership can no longer be proven (core/ownership.ts), early enough to stop the command in time.

import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { Blocked } from "../core/blocking.js";
import type { Recorded } from "../core/endings.js";
import {
  judge,
  leaseFor,
  RENEW_EVERY_MS,
  RENEW_TIMEOUT_MS,
  stopBy,
  type Observation,
} from "../core/ownership.js";
import { isConnectionLoss } from "../db/connect.js";
import { attachLock, claim, finish, renew, type AttemptOutcome } from "../db/ledger/attempts.js";
import { unlock } from "../db/session.js";
import { BlockReport } from "./block-report.js";
import { newAttempt, type RunContext } from "./context.js";
import type { Link } from "./link.js";

export interface Claim {
  readonly id: number;
  /** Aborted, with a sentence as its reason, once ownership can no longer be proven. */
  readonly lost: AbortSignal;
  /** Whether the advisory lock is held on a proven session (status shows it; its loss stops the command). */
  readonly lockHeld: boolean;
  /** Whether the connection is proven to be a session of its own (no pooler): the command's supervisor may watch it. */
  readonly proven: boolean;
  /** Calls `listener` with the stop time (Date.now() scale) now and after every renewal that extends it. */
  onStopBy(listener: (stopByMs: number) => void): void;
  /** Records the outcome, fenced by the attempt id; on a fresh connection if ours died. */
  finish(outcome: AttemptOutcome): Promise<Recorded>;
}

/**
 * Claims the task and runs `fn` as its owner. Undefined when the claim lost (another attempt owns the
 * lock, or the release succeeded meanwhile): the caller reads the ledger and decides again.
 */
export async function withClaim<T>(
  ctx: RunContext,
  link: Link,
  fn: (claim: Claim) => Promise<T>,
): Promise<{ value: T } | undefined> {
  const leaseMs = leaseFor(ctx.config.killGraceMs);
  const id = await link.step((client) => claim(client, ctx.ledger, { ...newAttempt(ctx), leaseMs }));
  if (id === undefined) return undefined;
  ctx.waiting.id = undefined; // the claim ended this process's waiting row as 'became-leader'
  const lock = await attach(ctx, link, id);
  const renewals = keepRenewed(ctx, link, id, leaseMs, lock);
  let recorded: Recorded | undefined;
  const end = async (outcome: AttemptOutcome) => {
    await renewals.stop();
    return (recorded ??= await record(ctx, link, id, outcome, renewals.lost.aborted));
  };
  try {
    const claim = {
      id,
      lost: renewals.lost,
      lockHeld: lock.held,
      proven: link.proven,
      onStopBy: (listener: (stopByMs: number) => void) => renewals.onStopBy(listener),
    };
    return { value: await fn({ ...claim, finish: end }) };
  } finally {
    // A lead that ended without recording (a bug, or a throw): never leave the attempt running.
    if (recorded === undefined)
      await end({
        status: renewals.lost.aborted ? "lost" : "interrupted",
        exitCode: null,
        signal: null,
        outputTail: "",
      });
    // The lock goes back with its session when that session failed; otherwise it is released here.
    if (lock.held && !renewals.lockSessionFailed) await release(ctx, lock.client);
  }
}

/** On a proven session, takes the advisory lock for the attempt; a lock that is taken already (a leak) is said. */
async function attach(
  ctx: RunContext,
  link: Link,
  id: number,
): Promise<{ client: pg.Client; held: boolean }> {
  const client = await link.client();
  if (!link.proven) return { client, held: false };
  try {
    const held = await attachLock(client, ctx.ledger, id);
    if (!held)
      ctx.reporter.warn(
        `another session holds the advisory lock "${ctx.config.lockName}" (run release-orchestrator doctor to see which); the lease alone protects this run.`,
      );
    return { client, held };
  } catch (error) {
    if (!isConnectionLoss(error)) throw error;
    await link.drop();
    return { client, held: false };
  }
}

/** Renews the lease every RENEW_EVERY_MS until stopped, and aborts `lost` when the loss rule says so. */
function keepRenewed(
  ctx: RunContext,
  link: Link,
  id: number,
  leaseMs: number,
  lock: { client: pg.Client; held: boolean },
): {
  lost: AbortSignal;
  readonly lockSessionFailed: boolean;
  onStopBy(listener: (stopByMs: number) => void): void;
  stop(): Promise<void>;
} {
  const lost = new AbortController();
  const listeners: ((stopByMs: number) => void)[] = [];
  let lockSessionFailed = false;
  const stopped = new AbortController();
  const blocking = new BlockReport(ctx, id);
  let lastRenewedMs = Date.now(); // the claim took the lease just before
  const see = (seen: Observation) => {
    const nowMs = Date.now();
    const state = {
      holdsLock: lock.held,
      lastRenewedMs,
      nowMs,
      stopByMs: stopBy(lastRenewedMs, leaseMs, ctx.config.killGraceMs),
    };
    const verdict = judge(state, seen);
    if (lock.held && seen.kind !== "renewed") lockSessionFailed = true;
    if (verdict.lost && !lost.signal.aborted) lost.abort(verdict.reason);
    return verdict;
  };
  // The stop time is kept by a timer too: a renewal that hangs must not make this process stop late.
  let stopTimer: NodeJS.Timeout | undefined;
  const armStopTimer = () => {
    clearTimeout(stopTimer);
    const inMs = stopBy(lastRenewedMs, leaseMs, ctx.config.killGraceMs) - Date.now();
    stopTimer = setTimeout(() => see({ kind: "stop-time" }), Math.max(0, inMs)).unref();
  };
  armStopTimer();
  const onError = (error: Error) => see({ kind: "lock-session-ended", message: error.message });
  const onEnd = () => see({ kind: "lock-session-ended", message: undefined });
  if (lock.held) lock.client.on("error", onError).on("end", onEnd);
  const loop = (async () => {
    while (!stopped.signal.aborted && !lost.signal.aborted) {
      await sleep(RENEW_EVERY_MS, undefined, { signal: stopped.signal, ref: false }).catch(() => {});
      if (stopped.signal.aborted || lost.signal.aborted) break;
      const sent = Date.now();
      const seen = await renewOnce(
        ctx,
        link,
        id,
        lock,
        stopBy(lastRenewedMs, leaseMs, ctx.config.killGraceMs),
      );
      const verdict = see(seen);
      if (!verdict.lost && verdict.renewed) {
        lastRenewedMs = sent;
        armStopTimer();
        for (const listener of listeners) listener(stopBy(lastRenewedMs, leaseMs, ctx.config.killGraceMs));
      }
      if (seen.kind === "renewed") blocking.seen(seen.blocked ?? null);
      else if (seen.kind === "renewal-failed" && !lock.held)
        ctx.reporter.debug(`lease renewal failed (${seen.message}); retrying`);
    }
    clearTimeout(stopTimer);
    lock.client.off("error", onError).off("end", onEnd);
  })();
  return {
    lost: lost.signal,
    get lockSessionFailed() {
      return lockSessionFailed;
    },
    onStopBy(listener) {
      listeners.push(listener);
      listener(stopBy(lastRenewedMs, leaseMs, ctx.config.killGraceMs));
    },
    async stop() {
      stopped.abort();
      await loop;
    },
  };
}

/** One renewal, as an observation for the loss rule; a connection that fails is dropped and reopened next time. */
async function renewOnce(
  ctx: RunContext,
  link: Link,
  id: number,
  lock: { client: pg.Client; held: boolean },
  stopByMs: number,
): Promise<Observation & { blocked?: Blocked | null }> {
  try {
    const left = Math.max(500, stopByMs - Date.now());
    const client = await link.client(left, left);
    if (lock.held && client !== lock.client) return { kind: "session-changed" };
    const renewal = await renew(client, ctx.ledger, id, RENEW_TIMEOUT_MS);
    return { kind: "renewed", owned: renewal.owned, lockHeld: renewal.lockHeld, blocked: renewal.blocked };
  } catch (error) {
    if (!lock.held) await link.drop();
    return { kind: "renewal-failed", message: (error as Error).message };
  }
}

/** Records the outcome, fenced by the attempt id: on our connection, else (lost, or it died) on a fresh one. */
async function record(
  ctx: RunContext,
  link: Link,
  id: number,
  outcome: AttemptOutcome,
  lost: boolean,
): Promise<Recorded> {
  if (!lost) {
    try {
      return (await finish(await link.client(), ctx.ledger, id, outcome)) ? "recorded" : "not-ours";
    } catch (error) {
      if (!isConnectionLoss(error)) throw error;
      await link.drop();
    }
  }
  try {
    const fresh = await link.open(5000);
    try {
      return (await finish(fresh, ctx.ledger, id, outcome)) ? "recorded" : "not-ours";
    } finally {
      await fresh.end().catch(() => {});
    }
  } catch (error) {
    ctx.reporter.warn(`could not record attempt #${id} as ${outcome.status}: ${(error as Error).message}`);
    return "unrecorded";
  }
}

/** Releases the advisory lock; a failure only warns (the lock ends with its session anyway). */
async function release(ctx: RunContext, client: pg.Client): Promise<void> {
  try {
    if (!(await unlock(client, ctx.key)))
      ctx.reporter.warn("the advisory lock was not held when releasing it.");
  } catch (error) {
    ctx.reporter.warn(
      `could not release the advisory lock cleanly (${(error as Error).message}); it is freed when the session ends.`,
    );
  }
}
