// The library: the same path the CLI takes, for programs that embed release-orchestrator.

export { runRelease, type RunInput, type RunResult, type RunOutcome } from "./run.js";
export {
  parseConfig,
  loadConfig,
  type Config,
  type ConfigInput,
  type ConfigResult,
  type Command,
} from "./config.js";
export {
  decide,
  type Decision,
  type Situation,
  type AttemptView,
  type AttemptStatus,
  type LeaseView,
  takeover,
  planWait,
} from "./decide.js";
export { deriveLockKey, LOCK_NAMESPACE, type LockKey } from "./lock-key.js";
export { resolveReleaseId, COMMIT_ENV_VARS, type ReleaseId } from "./release-id.js";
export { parseDuration, formatDuration } from "./duration.js";
export { ExitCode } from "./exit-codes.js";
export * from "./errors.js";
export { OPTIONS, ROLES, FOLLOWER_MODES, type Role, type FollowerMode, type OptionSpec } from "./options.js";
export { createReporter, type Reporter } from "./reporter.js";
export { serveReleases, type ServeOptions } from "./serve.js";
export { readReleases, readAttempts, type ReleaseRecord, type AttemptRecord } from "./history.js";
export { readStatus, runDoctor, type StatusReport, type Finding } from "./inspect.js";
