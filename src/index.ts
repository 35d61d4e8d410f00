// The library: the same path the CLI takes, for programs that embed release-orchestrator.

export { runRelease, type RunInput, type RunResult, type RunOutcome } from "./run/runbook.js";
export {
  parseConfig,
  loadConfig,
  type Config,
  type ConfigInput,
  type ConfigResult,
  type Command,
} from "./core/config.js";
export {
  decide,
  type Decision,
  type Situation,
  type AttemptView,
  type AttemptStatus,
  type LeaseView,
  takeover,
  planWait,
} from "./core/decide.js";
export { deriveLockKey, LOCK_NAMESPACE, type LockKey } from "./core/lock-key.js";
export { resolveReleaseId } from "./load/release-id.js";
export { COMMIT_ENV_VARS, type ReleaseId } from "./core/release-id.js";
export { parseDuration, formatDuration } from "./core/duration.js";
export { ExitCode } from "./core/exit-codes.js";
export * from "./core/errors.js";
export {
  OPTIONS,
  ROLES,
  FOLLOWER_MODES,
  type Role,
  type FollowerMode,
  type OptionSpec,
} from "./core/options.js";
export { createReporter, type Reporter } from "./core/reporter.js";
export { serveReleases, type ServeOptions } from "./operator/serve.js";
export { readReleases, readAttempts, type ReleaseRecord, type AttemptRecord } from "./db/ledger/reads.js";
export { readStatus, runDoctor, type StatusReport, type Finding } from "./operator/status.js";
