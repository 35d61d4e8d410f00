// `run`, the runbook: resolve the release, connect, make the ledger ready, then read the ledger and
// decide afresh after every step: claim and lead, wait, take over a stale owner, or report an outcome.
// The rules live in decide.ts (pure); the ledger (ledger.ts) is the authority on ownership.

import { hostname } from "node:os";
import { checkCommand, describeCommand, loadExeca } from "./command.js";
import { passwordOf, type Config, type Environment } from "./config.js";
import { isConnectionLoss } from "./db.js";
import type pg from "pg";
import { decide, planWait } from "./decide.js";
import { formatDuration } from "./duration.js";
import { UsageError } from "./errors.js";
import { ExitCode } from "./exit-codes.js";
import { Ledger, LEDGER_VERSION, type FollowerOutcome, type LedgerState } from "./ledger.js";
import { deriveLockKey } from "./lock-key.js";
import { resolveReleaseId, shortReleaseId } from "./release-id.js";
import type { Reporter } from "./reporter.js";
import {
  exitCodeForSignal,
  fields,
  participant,
  result,
  type RunContext,
  type RunResult,
} from "./run/context.js";
import { lead } from "./run/lead.js";
import { Link } from "./run/link.js";
import { leaseFor } from "./run/ownership.js";
import { describeAttempt, Progress } from "./run/progress.js";

export type { RunOutcome, RunResult } from "./run/context.js";

export interface RunInput {
  config: Config;
  /** The environment the command gets: the process environment over the .env file. */
  env: Environment;
  cwd: string;
  reporter: Reporter;
  /** Aborted with "SIGINT" or "SIGTERM" as its reason when the orchestrator is asked to stop. */
  signal?: AbortSignal;
}

/** Runs the release task under the behaviour contract of MISSION.md and returns how it ended. */
export async function runRelease(input: RunInput): Promise<RunResult> {
  const ctx = await resolve(input);
  const { config } = ctx;
  if (config.role === "follower" && config.followerMode === "skip") return skip(ctx);
  const link = new Link(ctx);
  const progress = new Progress(ctx);
  try {
    return await decideUntilDone(ctx, link, progress);
  } finally {
    progress.stop();
    await link.close();
  }
}

/** Who this process is and what it releases; checks the command before anything is recorded. */
async function resolve(input: RunInput): Promise<RunContext> {
  const { config, reporter } = input;
  reporter.addSecret(passwordOf(config.databaseUrl));
  const app = config.app ?? hostname();
  reporter.setApp(app);
  const release = await resolveReleaseId(config, input.env, input.cwd);
  if (release === undefined) {
    if (config.role === "follower" && config.followerMode === "wait") {
      throw new UsageError(
        "A waiting follower needs a release id to know which attempt to wait for: set RELEASE_ID, stamp a .release-id file at build time, pass --fingerprint db/migrate, or use --follower-mode skip.",
      );
    }
    reporter.warn(
      "No release id found (RELEASE_ID, a .release-id file, HEROKU_SLUG_COMMIT, SOURCE_VERSION, CI commit variables, git, --fingerprint): this run is unversioned, so every process runs the command in turn. Set RELEASE_ID or pass --fingerprint db/migrate to run it once per release.",
    );
  } else {
    reporter.debug(`release id ${release.id} from ${release.source}`);
  }
  if (config.role !== "follower" && config.command !== undefined) {
    checkCommand(config.command, input.env, input.cwd);
    void loadExeca(); // likely needed soon: load it while the database answers
  }
  const key = deriveLockKey(config.lockName);
  const startedMs = Date.now();
  return {
    config,
    env: input.env,
    cwd: input.cwd,
    reporter,
    signal: input.signal,
    app,
    host: hostname(),
    release,
    label: release === undefined ? "(unversioned)" : `release ${shortReleaseId(release.id)}`,
    key,
    ledger: new Ledger(config.schema, key),
    startedMs,
    deadline: startedMs + config.waitTimeoutMs,
  };
}

/** Follower in skip mode: exit 0 at once; record it if the database answers on the first try. */
async function skip(ctx: RunContext): Promise<RunResult> {
  ctx.reporter.warn(
    `follower in skip mode: not waiting for ${ctx.config.task} of ${ctx.label}; this app's new code may boot before the schema is migrated.`,
    fields(ctx, "skipped", undefined),
  );
  if (ctx.config.databaseUrl !== undefined) {
    const link = new Link(ctx);
    try {
      const client = await link.open(0);
      try {
        if ((await ctx.ledger.readVersion(client)) === LEDGER_VERSION)
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

async function decideUntilDone(ctx: RunContext, link: Link, progress: Progress): Promise<RunResult> {
  const { config, ledger, reporter } = ctx;
  const query = { task: config.task, releaseId: ctx.release?.id, lockName: config.lockName };
  const read = async (first = false): Promise<LedgerState> => {
    const client = await link.client();
    if (first) await ledger.ensure(client, ctx.signal);
    return ledger.readState(client, query, first ? participant(ctx) : undefined);
  };

  let state = await withReconnect(ctx, link, () => read(true));
  const recordedDone = state.recordedDone;
  const finishedBeforeStart = state.latest?.status === "running" ? undefined : state.latest?.id;
  let checkedCrowd = false;
  for (let round = 0; ; round++) {
    if (ctx.signal?.aborted === true) {
      const code = exitCodeForSignal(ctx.signal.reason);
      progress.stop();
      await recordQuietly(ctx, link, "interrupted", code, state.latest?.id);
      reporter.info(
        `interrupted by ${String(ctx.signal.reason)} while waiting; nothing was run.`,
        fields(ctx, "interrupted", state.latest?.id, { exitCode: code }),
      );
      return result(ctx, "interrupted", code, state.latest?.id);
    }
    const decision = decide({
      role: config.role,
      followerMode: config.followerMode,
      versioned: ctx.release !== undefined,
      latest: state.latest,
      holder: state.holder,
      finishedBeforeStart,
      timedOut: Date.now() >= ctx.deadline,
      orphanPolicy: config.orphanSessions,
    });
    reporter.debug(
      `decision: ${decision.action} (latest ${state.latest ? `#${state.latest.id} ${state.latest.status}` : "none"}, owner ${state.holder ? `#${state.holder.id}` : "none"})`,
    );
    if (decision.action !== "wait") progress.stop();

    switch (decision.action) {
      case "claim": {
        const command = config.command;
        if (command === undefined)
          throw new UsageError("No command to run: put it after -- or set RELEASE_COMMAND.");
        const commandText = reporter.redact(describeCommand(command));
        const leaseMs = leaseFor(config.killGraceMs);
        const claimed = await withReconnect(ctx, link, async () =>
          ledger.claim(await link.client(), {
            releaseId: ctx.release?.id,
            task: config.task,
            lockName: config.lockName,
            app: ctx.app,
            host: ctx.host,
            pid: process.pid,
            role: config.role,
            command: commandText,
            leaseMs,
          }),
        );
        // Lost the race (another process claimed, or the release succeeded meanwhile): read and decide again.
        if (claimed === undefined) break;
        return await lead(ctx, link, { id: claimed.id, command, commandText, leaseMs });
      }
      case "done": {
        const waited = decision.reason === "leader-succeeded";
        if (waited || !recordedDone)
          await recordQuietly(
            ctx,
            link,
            waited ? "succeeded" : "already-done",
            ExitCode.ok,
            decision.attempt.id,
          );
        reporter.info(
          waited
            ? `${describeAttempt(ctx, decision.attempt)} succeeded; done after waiting ${formatDuration(Date.now() - ctx.startedMs)}.`
            : `${config.task} already succeeded for ${ctx.label} (attempt #${decision.attempt.id} by ${decision.attempt.app}); nothing to do.`,
          fields(ctx, waited ? "leader-succeeded" : "already-done", decision.attempt.id, { exitCode: 0 }),
        );
        return result(ctx, waited ? "leader-succeeded" : "already-done", ExitCode.ok, decision.attempt.id);
      }
      case "fail": {
        await recordQuietly(ctx, link, "failed", ExitCode.leaderFailed, decision.attempt.id);
        const how =
          decision.reason === "abandoned"
            ? "was abandoned: its leader is gone (its lease expired or its session ended)"
            : decision.attempt.status === "failed"
              ? `failed with exit code ${decision.attempt.exitCode ?? "unknown"}`
              : `ended ${decision.attempt.status}`;
        reporter.error(
          `${describeAttempt(ctx, decision.attempt)} ${how}; exiting ${ExitCode.leaderFailed}. Fix the cause and retry the release (heroku releases:retry, or re-run the job).`,
          fields(ctx, "leader-failed", decision.attempt.id, {
            exitCode: ExitCode.leaderFailed,
            reason: decision.reason,
          }),
        );
        return result(ctx, "leader-failed", ExitCode.leaderFailed, decision.attempt.id);
      }
      case "timeout": {
        await recordQuietly(ctx, link, "timeout", ExitCode.timeout, decision.on?.id);
        reporter.error(
          `timed out after ${formatDuration(Date.now() - ctx.startedMs)} waiting for ${decision.on ? describeAttempt(ctx, decision.on) : `a leader for ${config.task} of ${ctx.label}`}; raise --wait-timeout (RELEASE_WAIT_TIMEOUT) or look at the leader with release-orchestrator status.`,
          fields(ctx, "timeout", decision.on?.id, { exitCode: ExitCode.timeout }),
        );
        return result(ctx, "timeout", ExitCode.timeout, decision.on?.id);
      }
      case "skip":
        return skip(ctx);
      case "abandon": {
        const taken = await withReconnect(ctx, link, async () =>
          ledger.abandon(await link.client(), decision.attempt.id),
        );
        if (taken)
          reporter.warn(
            `taking over: ${describeAttempt(ctx, decision.attempt)} on ${decision.attempt.host} lost its owner (lease expired); recorded as abandoned.`,
            fields(ctx, "takeover", decision.attempt.id),
          );
        break;
      }
      case "end-orphans": {
        await withReconnect(ctx, link, async () =>
          ledger.terminateSessions(await link.client(), decision.pids),
        );
        reporter.warn(
          `${describeAttempt(ctx, decision.attempt)}: ended ${decision.pids.length} session(s) its command left connected (--orphan-sessions terminate).`,
          fields(ctx, "orphan-sessions-ended", decision.attempt.id, { backendPids: decision.pids }),
        );
        break;
      }
      case "wait": {
        await withReconnect(ctx, link, async () => {
          if (!checkedCrowd) {
            checkedCrowd = true;
            if (!link.crowded) link.crowded = await ledger.isCrowded(await link.client(), reporter);
          }
          const plan = planWait({
            sessionProven: link.proven,
            crowded: link.crowded,
            round,
            leaseLeftMs: decision.on?.lease?.leftMs,
            leftMs: Math.max(0, ctx.deadline - Date.now()),
          });
          progress.show(decision.on, decision.until, state.latest);
          if (plan.listen) await link.listen((client) => ledger.listen(client));
          if (!plan.holdConnection) await link.drop();
          await link.sleep(plan.sleepMs);
        });
        break;
      }
    }
    state = await withReconnect(ctx, link, () => read());
  }
}

/**
 * Runs a ledger step; a lost connection (a restarting server, a cut network) is reopened and the step
 * tried again, within the wait timeout. Leading never comes through here: its session is its proof.
 */
async function withReconnect<T>(ctx: RunContext, link: Link, step: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (!isConnectionLoss(error) || Date.now() >= ctx.deadline) throw error;
      ctx.reporter.warn(
        `lost the database connection (${(error as Error).message}); reconnecting.`,
        fields(ctx, "reconnecting", undefined),
      );
      await link.drop();
      await link.client(
        Math.max(ctx.config.connectTimeoutMs, ctx.deadline - Date.now()),
        Math.max(0, ctx.deadline - Date.now()),
      );
    }
  }
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
  await ctx.ledger.recordFollowerOutcome(client, {
    ...participant(ctx),
    releaseId: ctx.release?.id,
    task: ctx.config.task,
    attemptId,
    outcome,
    exitCode,
  });
}
