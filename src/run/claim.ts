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
  /** Calls `listener` with the stop time (Date.now() scale) now and after every renewal that extends it; returns its unsubscribe. */
  onStopBy(listener: (stopByMs: number) => void): () => void;
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
): Renewals {
  return new Renewals(ctx, link, id, leaseMs, lock);
}

class Renewals {
  private readonly lostController = new AbortController();
  private readonly stopped = new AbortController();
  private readonly listeners = new Set<(stopByMs: number) => void>();
  private readonly blocking: BlockReport;
  private lastRenewedMs = Date.now(); // the claim took the lease just before
  private stopTimer: NodeJS.Timeout | undefined;
  private readonly loop: Promise<void>;
  /** The lock session failed (or was replaced): the lock goes with it, nothing to release. */
  lockSessionFailed = false;
  private readonly onError = (error: Error) =>
    this.see({ kind: "lock-session-ended", message: error.message });
  private readonly onEnd = () => this.see({ kind: "lock-session-ended", message: undefined });

  constructor(
    private readonly ctx: RunContext,
    private readonly link: Link,
    private readonly id: number,
    private readonly leaseMs: number,
    private readonly lock: { client: pg.Client; held: boolean },
  ) {
    this.blocking = new BlockReport(ctx, id);
    this.armStopTimer();
    if (lock.held) lock.client.on("error", this.onError).on("end", this.onEnd);
    this.loop = this.run();
  }

  get lost(): AbortSignal {
    return this.lostController.signal;
  }

  onStopBy(listener: (stopByMs: number) => void): () => void {
    this.listeners.add(listener);
    listener(this.stopByMs());
    return () => this.listeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
  }

  private stopByMs(): number {
    return stopBy(this.lastRenewedMs, this.leaseMs, this.ctx.config.killGraceMs);
  }

  /** Feeds an observation to the loss rule, and acts on its verdict. */
  private see(seen: Observation) {
    const state = {
      holdsLock: this.lock.held,
      lastRenewedMs: this.lastRenewedMs,
      nowMs: Date.now(),
      stopByMs: this.stopByMs(),
    };
    const verdict = judge(state, seen);
    if (this.lock.held && seen.kind !== "renewed" && seen.kind !== "stop-time") this.lockSessionFailed = true;
    if (verdict.lost && !this.lost.aborted) this.lostController.abort(verdict.reason);
    return verdict;
  }

  /** The stop time is kept by a timer too: a renewal that hangs must not make this process stop late. */
  private armStopTimer(): void {
    clearTimeout(this.stopTimer);
    const inMs = Math.max(0, this.stopByMs() - Date.now());
    this.stopTimer = setTimeout(() => this.see({ kind: "stop-time" }), inMs).unref();
  }

  private async run(): Promise<void> {
    const { ctx, lock } = this;
    while (!this.stopped.signal.aborted && !this.lost.aborted) {
      await sleep(RENEW_EVERY_MS, undefined, { signal: this.stopped.signal, ref: false }).catch(() => {});
      if (this.stopped.signal.aborted || this.lost.aborted) break;
      const sent = Date.now();
      const seen = await renewOnce(ctx, this.link, this.id, lock, this.stopByMs());
      const verdict = this.see(seen);
      if (!verdict.lost && verdict.renewed) {
        this.lastRenewedMs = sent;
        this.armStopTimer();
        for (const listener of this.listeners) listener(this.stopByMs());
      }
      if (seen.kind === "renewed") this.blocking.seen(seen.blocked ?? null);
      else if (seen.kind === "renewal-failed" && !lock.held)
        ctx.reporter.debug(`lease renewal failed (${seen.message}); retrying`);
    }
    clearTimeout(this.stopTimer);
    lock.client.off("error", this.onError).off("end", this.onEnd);
  }
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
