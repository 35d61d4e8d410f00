// What every part of one run shares: who this process is, what it releases, and its ledger.

import type { Config, Environment } from "../core/config.js";
import { ExitCode } from "../core/exit-codes.js";
import type { Ledger, Participant } from "../db/ledger/attempts.js";
import type { LockKey } from "../core/lock-key.js";
import type { ReleaseId } from "../core/release-id.js";
import type { Reporter } from "../core/reporter.js";

export type RunOutcome =
  | "ran" // this process was the leader and the command succeeded
  | "command-failed" // this process was the leader and the command failed; exit code passed through
  | "already-done" // the ledger already showed success for this release
  | "leader-succeeded" // waited, and the leader succeeded
  | "skipped" // follower in skip mode
  | "leader-failed" // waited on an attempt that failed (76)
  | "timeout" // 75
  | "lock-lost" // 77
  | "interrupted"; // 130 / 143

export interface RunResult {
  exitCode: number;
  outcome: RunOutcome;
  releaseId: string | undefined;
  /** The attempt this process ran or waited on. */
  attemptId: number | undefined;
}

export interface RunContext {
  config: Config;
  env: Environment;
  cwd: string;
  reporter: Reporter;
  signal: AbortSignal | undefined;
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

export function result(
  ctx: RunContext,
  outcome: RunOutcome,
  exitCode: number,
  attemptId?: number,
): RunResult {
  return { outcome, exitCode, releaseId: ctx.release?.id, attemptId };
}

export function exitCodeForSignal(signal: unknown): number {
  return signal === "SIGINT" ? ExitCode.sigint : ExitCode.sigterm;
}

/** Fields of a --json event: what happened, to which release and attempt. */
export function fields(
  ctx: RunContext,
  event: string,
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
