// The steps that do not end a run: taking over a stale owner, ending its command's sessions, and
// waiting once (listen or poll, by the pure plan) before the ledger is read again.

import type pg from "pg";
import { planWait, type AttemptView, type Decision } from "../core/decide.js";
import { attemptFinished } from "../core/notification.js";
import { ABANDONED_BECAUSE } from "../core/ownership.js";
import { abandon } from "../db/ledger/attempts.js";
import { WAITER_BEAT_MS } from "../db/ledger/sql.js";
import { beatWaiting, startWaiting } from "../db/ledger/waiters.js";
import { listen, readCrowding, terminateSessions } from "../db/session.js";
import { fields, participant, type RunContext } from "./context.js";
import { notifyOutcome } from "./notify.js";
import type { Link } from "./link.js";
import { describeAttempt, type Progress } from "./progress.js";

/** Marks a stale owner abandoned (one fenced statement: it must still be expired and unconnected). */
export async function takeOver(ctx: RunContext, link: Link, attempt: AttemptView): Promise<void> {
  const taken = await link.step((client) => abandon(client, ctx.ledger, attempt.id));
  if (!taken) return; // renewed, finished or taken by someone else meanwhile: read and decide again
  ctx.reporter.warn(
    `taking over: ${describeAttempt(ctx, attempt)} on ${attempt.host}: ${ABANDONED_BECAUSE}; recorded as abandoned.`,
    fields(ctx, "takeover", attempt.id),
  );
  const ended = { ...attempt, task: ctx.config.task };
  const durationMs = Date.now() - Date.parse(attempt.startedAt);
  await notifyOutcome(
    ctx.config,
    attemptFinished(ended, "abandoned", { exitCode: null, signal: null, durationMs }),
    ctx.reporter,
  );
}

/** --orphan-sessions terminate: ends the sessions a dead leader's command left connected. */
export async function endOrphans(
  ctx: RunContext,
  link: Link,
  attempt: AttemptView,
  pids: readonly number[],
): Promise<void> {
  await link.step((client) => terminateSessions(client, pids));
  ctx.reporter.warn(
    `${describeAttempt(ctx, attempt)}: ended ${pids.length} session(s) its command left connected (--orphan-sessions terminate).`,
    fields(ctx, "orphan-sessions-ended", attempt.id, { backendPids: pids }),
  );
}

/**
 * --orphan-sessions terminate, for a stalled leader (its lease ran out, its lock session lives): ends
 * that session on purpose. Its leader, if it resumes, finds its ownership lost and stops its command;
 * the takeover still waits for the command's sessions (or ends them too) before it abandons the attempt.
 */
export async function endStalled(
  ctx: RunContext,
  link: Link,
  attempt: AttemptView,
  pid: number,
): Promise<void> {
  await link.step((client) => terminateSessions(client, [pid]));
  ctx.reporter.warn(
    `${describeAttempt(ctx, attempt)}: its leader was stalled (connected as backend pid ${pid}, lease not renewed); ended its session (--orphan-sessions terminate).`,
    fields(ctx, "stalled-leader-ended", attempt.id, { backendPid: pid }),
  );
}

/** Waits once, as planned: NOTIFY on a proven session, else a poll; a crowded server gets our connection back. */
export async function waitOnce(
  ctx: RunContext,
  link: Link,
  progress: Progress,
  decision: Extract<Decision, { action: "wait" }>,
  latest: AttemptView | undefined,
  round: number,
): Promise<void> {
  await link.step(async (client) => {
    if (!link.crowdChecked) {
      link.crowdChecked = true;
      if (!link.crowded) {
        const crowding = await readCrowding(client);
        link.crowded = crowding.crowded;
        if (crowding.crowded)
          ctx.reporter.debug(
            `${crowding.used} of ${crowding.max} connections in use: waiting without holding one`,
          );
      }
    }
    await keepWaiting(ctx, client, decision.on?.id);
    const plan = planWait({
      sessionProven: link.proven,
      crowded: link.crowded,
      round,
      leaseLeftMs: decision.on?.lease?.leftMs,
      leftMs: Math.max(0, ctx.deadline - Date.now()),
    });
    progress.show(decision.on, decision.until, latest);
    if (plan.listen) await link.listen((c) => listen(c, ctx.ledger.channel));
    if (!plan.holdConnection) await link.drop();
    await link.sleep(plan.sleepMs);
  });
}

/**
 * Keeps this process's 'waiting' row live: created at the first wait, then a heartbeat at most every
 * WAITER_BEAT_MS (or at once when it waits for another attempt). A waiter that stops beating reads as gone.
 */
async function keepWaiting(ctx: RunContext, client: pg.Client, attemptId: number | undefined): Promise<void> {
  const waiting = ctx.waiting;
  if (waiting.id === undefined) {
    waiting.id = await startWaiting(client, ctx.ledger, participant(ctx), {
      task: ctx.config.task,
      releaseId: ctx.release?.id,
      attemptId,
    });
  } else if (Date.now() - waiting.beatAtMs >= WAITER_BEAT_MS || attemptId !== waiting.attemptId) {
    await beatWaiting(client, ctx.ledger, waiting.id, attemptId);
  } else {
    return;
  }
  waiting.attemptId = attemptId;
  waiting.beatAtMs = Date.now();
}
