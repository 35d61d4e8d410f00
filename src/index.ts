// The library: the same path the CLI takes, for programs that embed release-orchestrator. What is
// exported here is a semver promise: run a release, load its config, read status and history, check
// the setup, serve the page, and the errors and exit codes that say how it went.

export { runRelease, type RunInput, type RunResult, type RunOutcome } from "./library.js";
export {
  parseConfig,
  type Config,
  type ConfigInput,
  type ConfigResult,
  type Command,
} from "./core/config.js";
export { loadConfig } from "./load/config.js";
export { withClient } from "./operator/client.js";
export { readStatus, type StatusReport } from "./operator/status.js";
export { readHistory } from "./operator/history.js";
export type { HistoryFilter } from "./db/ledger/reads.js";
export type { Attempt, AttemptStatus, AttemptWithFollowers, FollowerRecord } from "./core/records.js";
export type { ReleasePhase, PhaseTask, TaskRun, RunState, DecidingAttempt } from "./core/release-phase.js";
export { runDoctor, type Finding, type Verdict } from "./operator/doctor/doctor.js";
export { serveReleases, type ServeOptions } from "./operator/serve.js";
export { createReporter, type Reporter, type ReporterOptions } from "./core/reporter.js";
export { ExitCode, type ExitCodeName } from "./core/exit-codes.js";
export { ReleaseError, UsageError, DatabaseUnavailableError, UnsafeSetupError } from "./core/errors.js";
