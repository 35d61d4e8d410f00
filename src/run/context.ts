// What every part of one run shares: who this process is, what it releases, and its ledger.

import { hostname } from "node:os";
import type { Config, Environment } from "../core/config.js";
import type { RunOutcome, RunResult } from "../core/endings.js";
import type { EventName } from "../core/events.js";
import { deriveLockKey, type LockKey } from "../core/lock-key.js";
import { shortReleaseId, type ReleaseId } from "../core/release-id.js";
import type { Reporter } from "../core/reporter.js";
import type { NewAttempt } from "../db/ledger/attempts.js";
import { ledgerOf, type Ledger } from "../db/ledger/sql.js";
import type { Participant } from "../db/ledger/waiters.js";
import { describeCommand, type SupervisorEntry } from "./command.js";

export interface RunContext {
  config: Config;
  env: Environment;
  cwd: string;
  reporter: Reporter;
  signal: AbortSignal | undefined;
  /** How to start the command's supervisor. */
  supervisor: SupervisorEntry;
  app: string;
  host: string;
  release: ReleaseId | undefined;
  /** "release 3f2c1a9" or "(unversioned)", for messages. */
  label: string;
  key: LockKey;
  ledger: Ledger;
  startedMs: number;
  /** When waiting ends with 75 (Date.now() scale). */
  deadline: number;
  /** This process's live 'waiting' row in the ledger, once it waits: its id, whom it waits for, its last heartbeat. */
  waiting: { id: number | undefined; attemptId: number | undefined; beatAtMs: number };
}

/** The context of a run of `config`, for this process, releasing `release`. */
export function createRunContext(
  input: {
    config: Config;
    env: Environment;
    cwd: string;
    reporter: Reporter;
    signal?: AbortSignal | undefined;
    supervisor: SupervisorEntry;
  },
  app: string,
  release: ReleaseId | undefined,
): RunContext {
  const key = deriveLockKey(input.config.lockName);
  const startedMs = Date.now();
  return {
    ...input,
    signal: input.signal,
    app,
    host: hostname(),
    release,
    label: release === undefined ? "(unversioned)" : `release ${shortReleaseId(release.id)}`,
    key,
    ledger: ledgerOf(input.config.schema, key),
    startedMs,
    deadline: startedMs + input.config.waitTimeoutMs,
    waiting: { id: undefined, attemptId: undefined, beatAtMs: 0 },
  };
}

export function result(
  ctx: RunContext,
  outcome: RunOutcome,
  exitCode: number,
  attemptId?: number,
): RunResult {
  return { outcome, exitCode, releaseId: ctx.release?.id, attemptId };
}

/** Fields of a --json event: what happened, to which release and attempt. */
export function fields(
  ctx: RunContext,
  event: EventName,
  attemptId: number | undefined,
  extra: Record<string, unknown> = {},
) {
  return {
    event,
    role: ctx.config.role,
    release: ctx.release?.id ?? null,
    task: ctx.config.task,
    attempt: attemptId ?? null,
    ...extra,
  };
}

/** Who this process is, for the ledger's follower outcomes. */
export function participant(ctx: RunContext): Participant {
  return {
    app: ctx.app,
    host: ctx.host,
    pid: process.pid,
    role: ctx.config.role,
    mode: ctx.config.followerMode,
    waitedMs: Date.now() - ctx.startedMs,
  };
}

/** The attempt this process would claim (its command as recorded: scrubbed of secrets), without its lease. */
export function newAttempt(ctx: RunContext): Omit<NewAttempt, "leaseMs"> {
  const command = ctx.config.command;
  return {
    releaseId: ctx.release?.id,
    task: ctx.config.task,
    lockName: ctx.config.lockName,
    app: ctx.app,
    host: ctx.host,
    pid: process.pid,
    role: ctx.config.role,
    command: command === undefined ? "" : ctx.reporter.redact(describeCommand(command)),
    waiterId: ctx.waiting.id,
  };
}
