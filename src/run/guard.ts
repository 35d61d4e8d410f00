// The lock-queue guard of one try of a lead's command: on a connection of its own (never the lock
// session's: an error there must reach the loss rule as it always did) it looks, a few times a second,
// for a statement of the command that has waited for a table lock past --lock-wait while
// other sessions queue behind it, and cancels it (one statement, db/ledger/guard.ts). Each cancel is
// said once, kept in the attempt's row, and decides the next try (core/lock-guard.ts).

import type pg from "pg";
import { setTimeout as sleep } from "node:timers/promises";
import { describeCancel, nextTry, type LockTry } from "../core/lock-guard.js";
import { destroySocket } from "../db/connect.js";
import { cancelStalling, recordTry, type Cancelled } from "../db/ledger/guard.js";
import { fields, type RunContext } from "./context.js";
import type { Link } from "./link.js";

const INSUFFICIENT_PRIVILEGE = "42501";
/** How long stop() waits for a look in flight. */
const STOP_GRACE_MS = 200;

/** How often the guard looks: often enough that a stall lasts little more than --lock-wait. */
export function guardPollMs(lockWaitMs: number): number {
  return Math.min(500, Math.max(100, Math.round(lockWaitMs / 4)));
}

/** What the guard did during one try: the cancels (the first one decides the next try), and whether it gave up. */
export interface GuardReport {
  cancels: LockTry[];
  /** The next try's plan, decided at the first cancel. */
  next: ReturnType<typeof nextTry> | undefined;
}

/**
 * Closes the guard's connection at once: it holds nothing worth a goodbye, and on a silent network a
 * graceful end would wait for a peer that never answers (pg's end() destroys the socket only while a
 * query is active).
 */
function closeHard(client: pg.Client | undefined): void {
  if (client === undefined) return;
  void client.end().catch(() => {});
  destroySocket(client);
}

export class LockGuard {
  private readonly stopped = new AbortController();
  private readonly loop: Promise<void>;
  private client: pg.Client | undefined;
  private readonly report: GuardReport = { cancels: [], next: undefined };

  constructor(
    private readonly ctx: RunContext,
    private readonly link: Link,
    private readonly attemptId: number,
    /** This try's number (1 for the first run of the command). */
    private readonly tryNo: number,
    private readonly lockWaitMs: number,
  ) {
    this.loop = this.run();
  }

  /**
   * Stops looking (the command ended) and says what happened during the try. A look still in flight
   * (a silent network) is not waited for beyond a moment: the lead goes on, the look fails with the
   * connection.
   */
  async stop(): Promise<GuardReport> {
    this.stopped.abort();
    await Promise.race([this.loop, sleep(STOP_GRACE_MS, undefined, { ref: false })]);
    // Ended now: a look hung on a silent network has its socket destroyed (pg does, for an active
    // query), so nothing keeps this process alive; a connection still coming (a full session-mode
    // pool) is closed as soon as it comes.
    closeHard(this.client);
    void this.loop.then(() => closeHard(this.client));
    return this.report;
  }

  private async run(): Promise<void> {
    const poll = guardPollMs(this.lockWaitMs);
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      await sleep(poll, undefined, { signal, ref: false }).catch(() => {});
      if (signal.aborted) break;
      if (!(await this.look())) break;
    }
  }

  /** One look; false when the guard gives up (no privilege to cancel). */
  private async look(): Promise<boolean> {
    const { ctx } = this;
    try {
      this.client ??= await this.link.open(
        ctx.config.connectTimeoutMs,
        ctx.config.connectTimeoutMs,
        "guard",
        this.stopped.signal,
      );
      const client = this.client;
      if (this.stopped.signal.aborted) return false;
      const found = await cancelStalling(client, this.attemptId, this.lockWaitMs);
      if (found !== undefined) await this.cancelled(client, found);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === INSUFFICIENT_PRIVILEGE) {
        ctx.reporter.warn(
          `lock guard: this database user may not cancel the command's statements (${(error as Error).message}); the guard is off for this run. Run the command as the same database user as the orchestrator, or GRANT pg_signal_backend TO the orchestrator's user.`,
          fields(ctx, "lock-guard-off", this.attemptId),
        );
        return false;
      }
      ctx.reporter.debug(`lock guard: looking failed (${(error as Error).message}); trying again`);
      closeHard(this.client);
      this.client = undefined;
      return true;
    }
  }

  /** Keeps a cancel: decides the next try at the first one, records it in the ledger, says it. */
  private async cancelled(client: pg.Client, found: Cancelled): Promise<void> {
    const { ctx } = this;
    const { config } = ctx;
    if (!found.cancelled) {
      ctx.reporter.debug(`lock guard: backend ${found.pid} could not be cancelled (it had just ended)`);
      return;
    }
    this.report.next ??= nextTry({
      done: this.tryNo,
      settings: { lockWaitMs: this.lockWaitMs, tries: config.lockTries, retryWaitMs: config.lockRetryWaitMs },
      nowMs: Date.now(),
      deadlineMs: ctx.deadline,
      random: Math.random(),
    });
    const { cancelled: _done, blocker, ...seen } = found;
    const redact = (text: string | null) => (text === null ? null : ctx.reporter.redact(text));
    const entry: LockTry = {
      ...seen,
      blocker: { ...blocker, applicationName: redact(blocker.applicationName), query: redact(blocker.query) },
      try: this.tryNo,
      of: config.lockTries,
      retryInMs: this.report.next.retry ? this.report.next.waitMs : null,
    };
    this.report.cancels.push(entry);
    await recordTry(client, ctx.ledger, this.attemptId, entry).catch((error: Error) =>
      ctx.reporter.debug(`lock guard: could not record the cancel (${error.message})`),
    );
    ctx.reporter.warn(describeCancel(entry), fields(ctx, "lock-cancelled", this.attemptId, { try: entry }));
  }
}
