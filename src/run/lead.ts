// Leading a claimed attempt: run its command, forward signals, stop it when ownership is lost, then
// record an outcome that always agrees with this process's exit code (core/endings.ts decides both).

import { leadEnding, statusOf, type CommandEnd, type LeadEnding } from "../core/endings.js";
import { attemptFinished, type NotifyEvent } from "../core/notification.js";
import type { Config } from "../core/config.js";
import type { LockTry } from "../core/lock-guard.js";
import { SUPERVISOR_LATE_MS } from "../core/ownership.js";
import { sslFromMode } from "../db/connect.js";
import { attemptApplicationName } from "../db/ledger/sql.js";
import type { Claim } from "./claim.js";
import { describeCommand, startCommand, type CommandResult, type StartedCommand } from "./command.js";
import { fields, type RunContext } from "./context.js";
import type { Link } from "./link.js";
import { runTries, type Once } from "./tries.js";

/** How a lead ended, and the notification to send once the claim's scope has released the lock. */
export interface Led {
  ending: LeadEnding;
  attemptId: number;
  notify: NotifyEvent;
}

export async function lead(ctx: RunContext, claim: Claim, link: Link): Promise<Led> {
  const startedMs = Date.now();
  const first = ctx.signal?.aborted === true ? String(ctx.signal.reason) : undefined;
  const tried =
    first === undefined
      ? await runTries(ctx, claim, link, (tryNo) => runCommand(ctx, claim, tryNo))
      : { run: undefined, interruptedBy: first, tries: [], blockedOut: undefined };
  const lostReason = claim.lost.aborted ? String(claim.lost.reason) : supervisorStop(tried.run?.stoppedBy);
  return record(ctx, claim, { ...tried, lostReason }, Date.now() - startedMs);
}

/** A stop the supervisor made on its own is a loss of ownership: this process could not prove it in time. */
function supervisorStop(stoppedBy: CommandResult["stoppedBy"]): string | undefined {
  switch (stoppedBy) {
    case "deadline":
      return "this process did not renew its lease in time (paused or frozen?), so its supervisor stopped the command";
    case "session":
      return "the command's watch session ended (terminated on purpose, or the database went away)";
    default:
      return undefined;
  }
}

/** Says what runs, starts the command with PGAPPNAME naming the attempt, and supervises it to its end. */
async function runCommand(ctx: RunContext, claim: Claim, tryNo: number): Promise<Once> {
  const { config, reporter } = ctx;
  const command = config.command;
  if (command === undefined) throw new Error("lead() needs a command: the runbook checks it before claiming");
  const text = reporter.redact(describeCommand(command));
  const which = tryNo === 1 ? "" : `, try ${tryNo} of ${config.lockTries}`;
  reporter.info(
    `${config.role}; running ${config.task} for ${ctx.label} (attempt #${claim.id}${which}): ${text}`,
    fields(ctx, "running", claim.id, { command: text, lockHeld: claim.lockHeld, try: tryNo }),
  );
  if (tryNo === 1 && config.lockWaitMs !== null && ctx.env.PGAPPNAME !== undefined)
    reporter.warn(
      `PGAPPNAME is set ("${reporter.redact(ctx.env.PGAPPNAME)}"), so the command's sessions are not named after attempt #${claim.id} and the lock-queue guard cannot find them; unset PGAPPNAME for the release, or pass --lock-wait off to say the guard is not wanted.`,
      fields(ctx, "lock-guard-off", claim.id),
    );
  const env = {
    ...ctx.env,
    RELEASE_ORCHESTRATOR_ATTEMPT_ID: String(claim.id),
    PGAPPNAME: ctx.env.PGAPPNAME ?? attemptApplicationName(claim.id),
  };
  const started = startCommand(command, {
    env,
    cwd: ctx.cwd,
    graceMs: config.killGraceMs,
    supervisor: ctx.supervisor,
    // On a direct connection the supervisor holds a session named after the attempt while the command
    // lives: a taker sees the command alive even when the command itself holds no session.
    ...(claim.proven && config.databaseUrl !== undefined
      ? {
          session: {
            url: config.databaseUrl,
            applicationName: attemptApplicationName(claim.id),
            ...sslOf(config),
          },
        }
      : {}),
    onNote: (message) => reporter.warn(`${message}.`),
  });
  // Without a lock session, the lease alone proves ownership: if this process stops answering (paused),
  // the supervisor stops the command at the stop time, as this process would.
  const unsubscribe = claim.lockHeld
    ? undefined
    : claim.onStopBy((stopByMs) =>
        started.deadline(stopByMs + SUPERVISOR_LATE_MS - Date.now(), config.killGraceMs),
      );
  try {
    return await supervise(ctx, claim, started);
  } finally {
    unsubscribe?.();
  }
}

/** Records the outcome (fenced), says how the lead ended, and builds its notification. */
async function record(
  ctx: RunContext,
  claim: Claim,
  facts: {
    run: CommandResult | undefined;
    interruptedBy: string | undefined;
    lostReason: string | undefined;
    tries: LockTry[];
    blockedOut: string | undefined;
  },
  durationMs: number,
): Promise<Led> {
  const { config, reporter } = ctx;
  const end: CommandEnd | undefined =
    facts.run === undefined
      ? undefined
      : { exitCode: facts.run.exitCode, signal: facts.run.signal, byItself: facts.run.byItself };
  const outputTail = reporter.redact(facts.run?.outputTail ?? "");
  const exit = {
    exitCode: end === undefined || end.signal !== null ? null : end.exitCode,
    signal: end?.signal ?? null,
  };
  const recorded = await claim.finish({
    status: statusOf({ ...facts, run: end }).status,
    ...exit,
    outputTail,
  });
  const ending = leadEnding({
    ...facts,
    run: end,
    recorded,
    attemptId: claim.id,
    task: config.task,
    label: ctx.label,
    durationMs,
  });
  reporter[ending.level](ending.message, fields(ctx, ending.event, claim.id, ending.fields));
  const attempt = {
    id: claim.id,
    releaseId: ctx.release?.id,
    task: config.task,
    app: ctx.app,
    role: config.role,
    host: ctx.host,
  };
  const notify = attemptFinished(attempt, ending.notifyStatus, {
    exitCode: end?.exitCode ?? null,
    signal: end?.signal ?? null,
    durationMs: end === undefined ? 0 : durationMs,
    outputTail,
    tries: facts.tries,
  });
  return { ending, attemptId: claim.id, notify };
}

/** Waits for the command: forwards SIGINT/SIGTERM to its group, and stops it when ownership is lost. */
async function supervise(ctx: RunContext, claim: Claim, started: StartedCommand): Promise<Once> {
  const grace = ctx.config.killGraceMs;
  let stopping: Promise<CommandResult> | undefined;
  const stop = (signal: NodeJS.Signals) => {
    stopping ??= started.stop(signal, grace);
  };
  let interruptedBy: string | undefined;
  const onLost = () => {
    ctx.reporter.error(`ownership was lost: ${String(claim.lost.reason)}; stopping the command.`);
    stop("SIGTERM");
  };
  const onAbort = () => {
    interruptedBy = String(ctx.signal?.reason ?? "SIGTERM");
    ctx.reporter.info(`received ${interruptedBy}; forwarding it to the command.`);
    started.signal(interruptedBy as NodeJS.Signals);
    setTimeout(() => stop("SIGKILL"), grace).unref();
  };
  claim.lost.addEventListener("abort", onLost, { once: true });
  // A signal that came while the command was being started is forwarded now.
  if (ctx.signal?.aborted === true) onAbort();
  else ctx.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const run = await started.result;
    if (stopping !== undefined) await stopping;
    return { run, interruptedBy };
  } finally {
    ctx.signal?.removeEventListener("abort", onAbort);
    claim.lost.removeEventListener("abort", onLost);
  }
}

/** The TLS setting of the ledger's URL (PGSSLMODE from .env included), for the supervisor's session. */
function sslOf(config: Config): { ssl?: boolean | { rejectUnauthorized: false } } {
  const ssl = sslFromMode(config.databaseUrl ?? "", config.sslMode);
  return ssl === undefined ? {} : { ssl };
}
