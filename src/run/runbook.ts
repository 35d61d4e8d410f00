// `run`, the runbook: resolve the release, connect, make the ledger ready, then read the ledger and
// decide afresh after every step: claim and lead, wait, take over a stale owner, or report an outcome.
// The rules live in decide.ts (pure); the ledger (ledger.ts) is the authority on ownership.

import { hostname } from "node:os";
import { checkCommand, describeCommand, loadExeca } from "./command.js";
import { passwordOf, type Config, type Environment } from "../core/config.js";
import { decide } from "../core/decide.js";
import { UsageError } from "../core/errors.js";
import { Ledger } from "../db/ledger/attempts.js";
import { deriveLockKey } from "../core/lock-key.js";
import { shortReleaseId } from "../core/release-id.js";
import { resolveReleaseId } from "../load/release-id.js";
import type { Reporter } from "../core/reporter.js";
import { participant, type RunContext, type RunResult } from "./context.js";
import { endDone, endFailed, endInterrupted, endTimeout, skip } from "./endings.js";
import { lead } from "./lead.js";
import { Link } from "./link.js";
import { leaseFor } from "./ownership.js";
import { Progress } from "./progress.js";
import { endOrphans, takeOver, waitOnce } from "./steps.js";

export type { RunOutcome, RunResult } from "./context.js";

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
  reporter.setContext({ release: release?.id });
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
    waiting: { id: undefined, attemptId: undefined, beatAtMs: 0 },
  };
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
    await ledger.ensure(client, ctx.signal);
    return ledger.readState(client, query, participant(ctx));
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
        const claimed = await claim(ctx, link);
        if (claimed !== undefined) return lead(ctx, link, claimed);
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
      case "wait":
        await waitOnce(ctx, link, progress, decision, state.latest, round);
        break;
    }
    state = await link.step((client) => ledger.readState(client, query));
  }
}

/** Claims the task with one statement; undefined when the ledger's constraints say another owns it. */
async function claim(ctx: RunContext, link: Link) {
  const { config, reporter } = ctx;
  const command = config.command;
  if (command === undefined)
    throw new UsageError("No command to run: put it after -- or set RELEASE_COMMAND.");
  const commandText = reporter.redact(describeCommand(command));
  const leaseMs = leaseFor(config.killGraceMs);
  const claimed = await link.step((client) =>
    ctx.ledger.claim(client, {
      releaseId: ctx.release?.id,
      task: config.task,
      lockName: config.lockName,
      app: ctx.app,
      host: ctx.host,
      pid: process.pid,
      role: config.role,
      command: commandText,
      leaseMs,
      waiterId: ctx.waiting.id,
    }),
  );
  if (claimed === undefined) return undefined;
  ctx.waiting.id = undefined; // the claim ended this process's waiting row as 'became-leader'
  return { id: claimed.id, command, commandText, leaseMs };
}
