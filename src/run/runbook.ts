// `run`, the runbook: resolve the release, connect, make the ledger ready, then read the ledger and
// decide afresh after every step: claim and lead, wait, take over a stale owner, or report an outcome.
// The rules live in core/decide.ts (pure); the ledger (db/ledger) is the authority on ownership.

import type { Config, Environment } from "../core/config.js";
import { decide } from "../core/decide.js";
import type { RunResult } from "../core/endings.js";
import { UsageError } from "../core/errors.js";
import type { ReleasePhase } from "../core/release-phase.js";
import type { Reporter } from "../core/reporter.js";
import { unversionedWarning } from "../core/release-id.js";
import { passwordOf } from "../core/secrets.js";
import { readState } from "../db/ledger/attempts.js";
import { readPhases } from "../db/ledger/plans.js";
import { ensureLedger } from "../db/ledger/schema.js";
import { appName } from "../load/config.js";
import { resolveReleaseId } from "../load/release-id.js";
import { withClaim } from "./claim.js";
import { checkCommand, type SupervisorEntry } from "./command.js";
import { createRunContext, participant, result, type RunContext } from "./context.js";
import { endDone, endFailed, endInterrupted, endTimeout, skip } from "./endings.js";
import { lead, type Led } from "./lead.js";
import { Link } from "./link.js";
import { notifyOutcome } from "./notify.js";
import { Progress } from "./progress.js";
import { endOrphans, endStalled, takeOver, waitOnce } from "./steps.js";

export type { RunOutcome, RunResult } from "../core/endings.js";

export interface RunInput {
  config: Config;
  /** The environment the command gets: the process environment over the .env file. */
  env: Environment;
  cwd: string;
  reporter: Reporter;
  /** Aborted with "SIGINT" or "SIGTERM" as its reason when the orchestrator is asked to stop. */
  signal?: AbortSignal;
  /** How to start the command's supervisor: this program (the CLI passes itself; see src/index.ts for the library). */
  supervisor: SupervisorEntry;
}

/** Runs the release task under the behaviour contract (docs/how-it-works.md) and returns how it ended. */
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
  const app = appName(config.app);
  reporter.setApp(app);
  const release = await resolveReleaseId(config, input.env, input.cwd);
  if (release === undefined) {
    if (config.role === "follower" && config.followerMode === "wait") {
      throw new UsageError(
        "A waiting follower needs a release id to know which attempt to wait for: set RELEASE_ID, stamp a .release-id file at build time, pass --fingerprint db/migrate, or use --follower-mode skip.",
      );
    }
    reporter.warn(unversionedWarning(input.env));
  } else {
    reporter.debug(`release id ${release.id} from ${release.source}`);
  }
  reporter.setContext({ release: release?.id });
  if (config.role !== "follower" && config.command !== undefined) {
    checkCommand(config.command, input.env, input.cwd);
  }
  return createRunContext(input, app, release);
}

/**
 * The loop of the runbook: read the ledger, decide (decide.ts), act, and read again after every step,
 * so that nothing is decided on a stale view (an attempt that succeeded meanwhile is never run again).
 */
async function decideUntilDone(ctx: RunContext, link: Link, progress: Progress): Promise<RunResult> {
  const { config, ledger, reporter } = ctx;
  const query = { task: config.task, releaseId: ctx.release?.id, lockName: config.lockName };
  // The first read makes the ledger ready and records "already-done" in the same statement if it is.
  let state = await link.step(async (client) => {
    await ensureLedger(client, ledger, ctx.signal);
    return readState(client, ledger, query, participant(ctx));
  });
  const recordedDone = state.recordedDone;
  const finishedBeforeStart = state.latest?.status === "running" ? undefined : state.latest?.id;
  for (let round = 0; ; round++) {
    if (ctx.signal?.aborted === true) {
      progress.stop();
      return endInterrupted(ctx, link, state.latest);
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
        if (config.command === undefined)
          throw new UsageError("No command to run: put it after -- or set RELEASE_COMMAND.");
        const led = await withClaim(ctx, link, (claim) => lead(ctx, claim, link));
        if (led !== undefined) return notifyLed(ctx, link, led.value);
        break; // lost the race (another claim, or a success meanwhile): read and decide again
      }
      case "done":
        return endDone(ctx, link, decision, recordedDone);
      case "fail":
        return endFailed(ctx, link, decision);
      case "timeout":
        return endTimeout(ctx, link, decision.on);
      case "skip":
        return skip(ctx);
      case "abandon":
        await takeOver(ctx, link, decision.attempt);
        break;
      case "end-orphans":
        await endOrphans(ctx, link, decision.attempt, decision.pids);
        break;
      case "end-stalled":
        await endStalled(ctx, link, decision.attempt, decision.pid);
        break;
      case "wait":
        await waitOnce(ctx, link, progress, decision, state.latest, round);
        break;
    }
    state = await link.step((client) => readState(client, ledger, query));
  }
}

/** Sends the lead's notification once its row is final and its lock released; an interrupted release has little time left (Heroku gives 30 s after SIGTERM). */
async function notifyLed(ctx: RunContext, link: Link, led: Led): Promise<RunResult> {
  const interrupted = led.ending.outcome === "interrupted";
  const phase = interrupted ? null : await phaseOf(ctx, link);
  await notifyOutcome(
    ctx.config,
    { ...led.notify, phase },
    ctx.reporter,
    interrupted ? { budgetMs: 3000 } : {},
  );
  return result(ctx, led.ending.outcome, led.ending.exitCode, led.attemptId);
}

/** The release as a whole for the notification, when one is sent and the release runs from tasks files. */
async function phaseOf(ctx: RunContext, link: Link): Promise<ReleasePhase | null> {
  const releaseId = ctx.release?.id;
  if (ctx.config.notifyUrl === undefined || releaseId === undefined) return null;
  try {
    const [phase] = await link.step((client) => readPhases(client, ctx.ledger, { releaseIds: [releaseId] }));
    return phase ?? null;
  } catch (error) {
    ctx.reporter.debug(`could not read the release as a whole for the notification: ${String(error)}`);
    return null;
  }
}
