// How a process that did not run the command ends: done, the leader failed, timed out, interrupted,
// or skipped. Each records its outcome in the ledger (never hiding the real one), says it in one line,
// and returns the exit code of the contract.

import type pg from "pg";
import type { AttemptView, Decision } from "../core/decide.js";
import { formatDuration } from "../core/duration.js";
import { ExitCode } from "../core/exit-codes.js";
import { exitCodeForSignal } from "../core/endings.js";
import { LEDGER_VERSION } from "../db/ledger/create.js";
import { readVersion } from "../db/ledger/schema.js";
import { recordFollowerOutcome, type FollowerOutcome } from "../db/ledger/waiters.js";
import { notifyOutcome } from "./notify.js";
import type { RunResult } from "../core/endings.js";
import { fields, participant, result, type RunContext } from "./context.js";
import { Link } from "./link.js";
import { describeAttempt } from "./progress.js";

export async function endDone(
  ctx: RunContext,
  link: Link,
  decision: Extract<Decision, { action: "done" }>,
  recordedDone: boolean,
): Promise<RunResult> {
  const waited = decision.reason === "leader-succeeded";
  const attempt = decision.attempt;
  if (waited || !recordedDone)
    await recordQuietly(ctx, link, waited ? "succeeded" : "already-done", ExitCode.ok, attempt.id);
  ctx.reporter.info(
    waited
      ? `${describeAttempt(ctx, attempt)} succeeded; done after waiting ${formatDuration(Date.now() - ctx.startedMs)}.`
      : `${ctx.config.task} already succeeded for ${ctx.label} (attempt #${attempt.id} by ${attempt.app}); nothing to do.`,
    fields(ctx, waited ? "leader-succeeded" : "already-done", attempt.id, { exitCode: 0 }),
  );
  return result(ctx, waited ? "leader-succeeded" : "already-done", ExitCode.ok, attempt.id);
}

export async function endFailed(
  ctx: RunContext,
  link: Link,
  decision: Extract<Decision, { action: "fail" }>,
): Promise<RunResult> {
  const attempt = decision.attempt;
  await recordQuietly(ctx, link, "failed", ExitCode.leaderFailed, attempt.id);
  const how =
    decision.reason === "abandoned"
      ? "was abandoned: its leader is gone (its lease expired or its session ended)"
      : attempt.status === "failed"
        ? `failed with exit code ${attempt.exitCode ?? "unknown"}`
        : `ended ${attempt.status}`;
  ctx.reporter.error(
    `${describeAttempt(ctx, attempt)} ${how}; exiting ${ExitCode.leaderFailed}. Fix the cause and retry the release (heroku releases:retry, or re-run the job).`,
    fields(ctx, "leader-failed", attempt.id, { exitCode: ExitCode.leaderFailed, reason: decision.reason }),
  );
  return result(ctx, "leader-failed", ExitCode.leaderFailed, attempt.id);
}

export async function endTimeout(
  ctx: RunContext,
  link: Link,
  on: AttemptView | undefined,
): Promise<RunResult> {
  const { config } = ctx;
  await recordQuietly(ctx, link, "timeout", ExitCode.timeout, on?.id);
  await notifyOutcome(
    config,
    {
      kind: "follower-timeout",
      releaseId: ctx.release?.id,
      task: config.task,
      app: ctx.app,
      role: config.role,
      status: "timeout",
      exitCode: ExitCode.timeout,
      durationMs: Date.now() - ctx.startedMs,
      attemptId: on?.id,
      leaderApp: on?.app,
    },
    ctx.reporter,
  );
  ctx.reporter.error(
    `timed out after ${formatDuration(Date.now() - ctx.startedMs)} waiting for ${on ? describeAttempt(ctx, on) : `a leader for ${config.task} of ${ctx.label}`}; raise --wait-timeout (RELEASE_WAIT_TIMEOUT) or look at the leader with release-orchestrator status.`,
    fields(ctx, "timeout", on?.id, { exitCode: ExitCode.timeout }),
  );
  return result(ctx, "timeout", ExitCode.timeout, on?.id);
}

export async function endInterrupted(
  ctx: RunContext,
  link: Link,
  latest: AttemptView | undefined,
): Promise<RunResult> {
  const code = exitCodeForSignal(ctx.signal?.reason);
  await recordQuietly(ctx, link, "interrupted", code, latest?.id);
  ctx.reporter.info(
    `interrupted by ${String(ctx.signal?.reason)} while waiting; nothing was run.`,
    fields(ctx, "interrupted", latest?.id, { exitCode: code }),
  );
  return result(ctx, "interrupted", code, latest?.id);
}

/** Follower in skip mode: exit 0 at once; record it if the database answers on the first try. */
export async function skip(ctx: RunContext): Promise<RunResult> {
  ctx.reporter.warn(
    `follower in skip mode: not waiting for ${ctx.config.task} of ${ctx.label}; this app's new code may boot before the schema is migrated.`,
    fields(ctx, "skipped", undefined),
  );
  if (ctx.config.databaseUrl !== undefined) {
    try {
      const client = await new Link(ctx).open(0);
      try {
        if ((await readVersion(client, ctx.ledger)) === LEDGER_VERSION)
          await record(ctx, client, "skipped", ExitCode.ok, undefined);
      } finally {
        await client.end().catch(() => {});
      }
    } catch (error) {
      ctx.reporter.debug(`could not record the skip: ${(error as Error).message}`);
    }
  }
  return result(ctx, "skipped", ExitCode.ok);
}

/** Records what a process that did not run the command ended with; never hides the real outcome. */
async function recordQuietly(
  ctx: RunContext,
  link: Link,
  outcome: FollowerOutcome["outcome"],
  exitCode: number,
  attemptId: number | undefined,
): Promise<void> {
  try {
    await record(ctx, await link.client(ctx.config.connectTimeoutMs, 0), outcome, exitCode, attemptId);
  } catch (error) {
    ctx.reporter.warn(`could not record this process's outcome in the ledger: ${(error as Error).message}`);
  }
}

async function record(
  ctx: RunContext,
  client: pg.Client,
  outcome: FollowerOutcome["outcome"],
  exitCode: number,
  attemptId: number | undefined,
): Promise<void> {
  await recordFollowerOutcome(
    client,
    ctx.ledger,
    { ...participant(ctx), releaseId: ctx.release?.id, task: ctx.config.task, attemptId, outcome, exitCode },
    ctx.waiting.id,
  );
}
