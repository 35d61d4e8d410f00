// The stable exit codes of release-orchestrator (MISSION.md, README "Exit codes").

export const ExitCode = {
  /** Ran and succeeded; already done for this release; waited and the leader succeeded; or skipped. */
  ok: 0,
  /** Usage or configuration error; nothing was run. */
  usage: 64,
  /** Database unavailable: connect or authentication failed after retries. */
  databaseUnavailable: 69,
  /** Timed out waiting for the lock or for the leader. */
  timeout: 75,
  /** This process waited on an attempt that failed. */
  leaderFailed: 76,
  /** The lock was lost during the run; the command was stopped. */
  lockLost: 77,
  /** Unsafe setup refused, e.g. a connection through a transaction-mode pooler. */
  unsafeSetup: 78,
  /** Interrupted by SIGINT (forwarded to the command). */
  sigint: 130,
  /** Interrupted by SIGTERM (forwarded to the command). */
  sigterm: 143,
  /** A bug in release-orchestrator itself. */
  internal: 70,
} as const;

export type ExitCodeName = keyof typeof ExitCode;
