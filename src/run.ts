// `run`: the orchestration shell. It reads like the runbook: resolve the release, connect, read the
// ledger, decide, then take the lock and run, or wait and report the leader's outcome.

import { hostname } from "node:os";
import type pg from "pg";
import { checkCommand, describeCommand, loadExeca, startCommand, type CommandResult } from "./command.js";
import { passwordOf, type Command, type Config, type Environment } from "./config.js";
import { applicationName, connect, describeTarget, isConnectionLoss, isServerBusy } from "./db.js";
import { decide, type AttemptView, type Decision, type LockState } from "./decide.js";
import { formatDuration } from "./duration.js";
import { UsageError } from "./errors.js";
import { ExitCode } from "./exit-codes.js";
import { attemptApplicationName, Ledger, type AttemptOutcome, type FollowerOutcome } from "./ledger.js";
import { openProbe, proveExclusive, readLockHolder, tryLock, unlock } from "./lock.js";
import { deriveLockKey, type LockKey } from "./lock-key.js";
import { resolveReleaseId, shortReleaseId, type ReleaseId } from "./release-id.js";
import type { Reporter } from "./reporter.js";

export interface RunInput {
  config: Config;
  /** The environment the command gets: the process environment over the .env file. */
  env: Environment;
  cwd: string;
  reporter: Reporter;
  /** Aborted with "SIGINT" or "SIGTERM" as its reason when the orchestrator is asked to stop. */
  signal?: AbortSignal;
}

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

/** How often the leader proves it still holds the lock; a lost lock is noticed within this plus HEARTBEAT_TIMEOUT_MS. */
const HEARTBEAT_INTERVAL_MS = 500;
const HEARTBEAT_TIMEOUT_MS = 1500;
/** Waiters retry the lock / re-read the ledger with backoff between these bounds, and wake on NOTIFY. */
const POLL_MIN_MS = 100;
const POLL_MAX_MS = 2000;
/** Added to a leader's kill grace and detection time: how long its command may outlive its lock session. */
const LEASE_MARGIN_MS = 2000;
/** Waiters on a crowded server reconnect to poll, between these bounds. */
const LIGHT_POLL_MIN_MS = 300;
const LIGHT_POLL_MAX_MS = 3000;
/** Progress lines while waiting, when stderr is not a terminal (Heroku logs, CI). */
const PROGRESS_EVERY_MS = 10_000;

/** A sleep that does not keep the process alive (a heartbeat that lost its race must not delay exit). */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

function exitCodeForSignal(signal: unknown): number {
  return signal === "SIGINT" ? ExitCode.sigint : ExitCode.sigterm;
}

function clock(date: Date): string {
  return date.toISOString().slice(11, 19);
}

/** Runs the release task under the behaviour contract of MISSION.md and returns how it ended. */
export async function runRelease(input: RunInput): Promise<RunResult> {
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

  const session = new Session(input, app, release);
  if (config.role === "follower" && config.followerMode === "skip") return session.skip();
  return session.run();
}

/** One process's part in one release: its connection, what it has seen, what it records. */
class Session {
  private readonly config: Config;
  private readonly reporter: Reporter;
  private readonly ledger: Ledger;
  private readonly key: LockKey;
  private readonly host = hostname();
  private readonly startedMs = Date.now();
  private readonly label: string;
  private wake: (() => void) | undefined;
  private client: pg.Client | undefined;
  /** Wait without holding a connection (see isCrowded). */
  private light = false;

  constructor(
    private readonly input: RunInput,
    private readonly app: string,
    private readonly release: ReleaseId | undefined,
  ) {
    this.config = input.config;
    this.reporter = input.reporter;
    this.ledger = new Ledger(this.config.schema);
    this.key = deriveLockKey(this.config.lockName);
    this.label = release === undefined ? "(unversioned)" : `release ${shortReleaseId(release.id)}`;
  }

  private get releaseId(): string | undefined {
    return this.release?.id;
  }

  private result(outcome: RunOutcome, exitCode: number, attemptId?: number): RunResult {
    return { outcome, exitCode, releaseId: this.releaseId, attemptId };
  }

  /** Opens a connection; `busyTimeoutMs` is how long a crowded server is worth retrying. */
  private async open(timeoutMs: number, busyTimeoutMs = timeoutMs): Promise<pg.Client> {
    const url = this.config.databaseUrl;
    if (url === undefined)
      throw new UsageError("No database configured: set DATABASE_URL (or RELEASE_DATABASE_URL).");
    const short = this.release === undefined ? "unversioned" : shortReleaseId(this.release.id);
    const client = await connect({
      url,
      applicationName: applicationName([this.app, this.config.role, short]),
      timeoutMs,
      busyTimeoutMs,
      signal: this.input.signal,
      sslMode: this.input.env.PGSSLMODE,
      onRetry: (error, attempt, delay) => {
        // A crowded server: from now on, wait without holding a connection.
        if (isServerBusy(error)) this.light = true;
        this.reporter.debug(
          `connect attempt ${attempt} to ${describeTarget(url)} failed (${(error as Error).message}); retrying in ${formatDuration(delay)}`,
        );
      },
    });
    client.on("notification", () => this.wake?.());
    return client;
  }

  /** Follower in skip mode: exit 0 at once; record it if the database answers on the first try. */
  async skip(): Promise<RunResult> {
    this.reporter.warn(
      `follower in skip mode: not waiting for ${this.config.task} of ${this.label}; this app's new code may boot before the schema is migrated.`,
    );
    if (this.config.databaseUrl !== undefined) {
      try {
        const client = await this.open(0);
        try {
          await this.record(client, "skipped", ExitCode.ok, undefined);
        } finally {
          await client.end().catch(() => {});
        }
      } catch (error) {
        this.reporter.debug(`could not record the skip: ${(error as Error).message}`);
      }
    }
    return this.result("skipped", ExitCode.ok);
  }

  async run(): Promise<RunResult> {
    this.client = await this.open(this.config.connectTimeoutMs, this.config.waitTimeoutMs);
    try {
      return await this.loop();
    } finally {
      this.stopProgress();
      this.wake = undefined;
      await this.client?.end().catch(() => {});
    }
  }

  /**
   * Waiters normally hold one connection and wake on NOTIFY. When the server is crowded (more than
   * half of max_connections in use, or it refused us for too many clients), they let go of it between
   * polls, so that the leader's command can still connect.
   */
  private async isCrowded(client: pg.Client): Promise<boolean> {
    const result = await client.query<{ used: number; max: number }>(
      "SELECT count(*)::int AS used, current_setting('max_connections')::int AS max FROM pg_stat_activity",
    );
    const row = result.rows[0];
    const crowded = row !== undefined && row.used * 2 > row.max;
    if (crowded)
      this.reporter.debug(`${row.used} of ${row.max} connections in use: waiting without holding one`);
    return crowded;
  }

  /** Waiting survives a lost connection (a restarting server, a cut network): reconnect within the wait timeout. */
  private async reconnect(error: unknown, deadline: number): Promise<pg.Client> {
    this.reporter.warn(
      `lost the database connection while waiting (${(error as Error).message}); reconnecting.`,
    );
    await this.client?.end().catch(() => {});
    this.client = undefined;
    this.client = await this.open(Math.max(this.config.connectTimeoutMs, deadline - Date.now()));
    return this.client;
  }

  private async loop(): Promise<RunResult> {
    const { config, reporter } = this;
    const deadline = this.startedMs + config.waitTimeoutMs;
    let client: pg.Client = this.client ?? (await this.open(this.config.connectTimeoutMs));
    let latest: AttemptView | undefined;
    let finishedBeforeStart: number | undefined;
    let firstRead = true;
    let fresh = true; // a new connection: read the ledger before deciding anything
    let lock: LockState = "not-tried";
    let listening = false;
    let recordedDone = false;
    let checkedCrowd = false;
    let delay = POLL_MIN_MS;
    let lightDelay = LIGHT_POLL_MIN_MS;

    for (;;) {
      let leading = false;
      try {
        if (fresh) {
          // The first read also records "already-done" when the release already succeeded (one round trip).
          const state = await this.ledger.readState(
            client,
            config.task,
            this.releaseId,
            firstRead ? this.outcomeBase() : undefined,
          );
          latest = state.latest;
          recordedDone ||= state.recordedDone;
          if (firstRead) {
            finishedBeforeStart = latest !== undefined && latest.status !== "running" ? latest.id : undefined;
            firstRead = false;
          }
          lock = "not-tried";
          if (config.role === "follower") ({ latest, lock } = await this.followerView(client, latest));
          fresh = false;
        }
        if (this.input.signal?.aborted) {
          if (lock === "held") await this.releaseLock(client);
          await this.record(client, "interrupted", exitCodeForSignal(this.input.signal.reason), latest?.id);
          reporter.info(
            `interrupted by ${String(this.input.signal.reason)} while waiting; nothing was run.`,
            this.fields("interrupted", latest?.id, { exitCode: exitCodeForSignal(this.input.signal.reason) }),
          );
          return this.result("interrupted", exitCodeForSignal(this.input.signal.reason), latest?.id);
        }
        const decision: Decision = decide({
          role: config.role,
          followerMode: config.followerMode,
          versioned: this.release !== undefined,
          lock,
          latest,
          finishedBeforeStart,
          timedOut: Date.now() >= deadline,
        });
        // Waiting goes wait -> take-lock -> wait...; only an end or a run closes the progress line.
        if (decision.action !== "wait" && decision.action !== "take-lock") this.stopProgress();
        reporter.debug(
          `decision: ${decision.action} (lock ${lock}, latest ${latest ? `#${latest.id} ${latest.status}` : "none"})`,
        );

        switch (decision.action) {
          case "take-lock": {
            const holder = client;
            const lockPid = await tryLock(holder, this.key);
            if (lockPid !== undefined) {
              lock = "held";
              // The probe connects meanwhile, and asks only once this client is idle (see openProbe).
              const probing = openProbe(this.config.databaseUrl ?? "", applicationName([this.app, "probe"]));
              probing.catch(() => {}); // a failure to connect is reported where it is awaited
              try {
                await this.ledger.ensure(holder);
                ({ latest } = await this.ledger.readState(holder, config.task, this.releaseId));
              } catch (error) {
                void probing.then((probe) => probe.end()).catch(() => {});
                throw error;
              }
              await proveExclusive(probing, this.key, lockPid);
            } else {
              lock = "busy";
            }
            continue;
          }
          case "run":
            leading = true;
            return await this.lead(client);
          case "done": {
            if (lock === "held") await this.releaseLock(client);
            const waited = decision.reason === "leader-succeeded";
            if (waited || !recordedDone) {
              await this.record(
                client,
                waited ? "succeeded" : "already-done",
                ExitCode.ok,
                decision.attempt.id,
              );
            }
            reporter.info(
              waited
                ? `${this.describeAttempt(decision.attempt)} succeeded; done after waiting ${formatDuration(Date.now() - this.startedMs)}.`
                : `${config.task} already succeeded for ${this.label} (attempt #${decision.attempt.id} by ${decision.attempt.app}); nothing to do.`,
              this.fields(waited ? "leader-succeeded" : "already-done", decision.attempt.id, { exitCode: 0 }),
            );
            return this.result(
              waited ? "leader-succeeded" : "already-done",
              ExitCode.ok,
              decision.attempt.id,
            );
          }
          case "fail": {
            if (lock === "held") await this.releaseLock(client);
            await this.record(client, "failed", ExitCode.leaderFailed, decision.attempt.id);
            const how =
              decision.reason === "abandoned"
                ? "was abandoned: its leader's lock session is gone"
                : decision.attempt.status === "failed"
                  ? `failed with exit code ${decision.attempt.exitCode ?? "unknown"}`
                  : `ended ${decision.attempt.status}`;
            reporter.error(
              `${this.describeAttempt(decision.attempt)} ${how}; exiting ${ExitCode.leaderFailed}. Fix the cause and retry the release (heroku releases:retry, or re-run the job).`,
              this.fields("leader-failed", decision.attempt.id, {
                exitCode: ExitCode.leaderFailed,
                reason: decision.reason,
              }),
            );
            return this.result("leader-failed", ExitCode.leaderFailed, decision.attempt.id);
          }
          case "timeout": {
            await this.record(client, "timeout", ExitCode.timeout, decision.on?.id);
            reporter.error(
              `timed out after ${formatDuration(Date.now() - this.startedMs)} waiting for ${decision.on ? this.describeAttempt(decision.on) : `the lock or a leader for ${config.task} of ${this.label}`}; raise --wait-timeout (RELEASE_WAIT_TIMEOUT) or look at the leader with release-orchestrator status.`,
              this.fields("timeout", decision.on?.id, { exitCode: ExitCode.timeout }),
            );
            return this.result("timeout", ExitCode.timeout, decision.on?.id);
          }
          case "skip":
            return this.skip();
          case "wait": {
            if (!checkedCrowd) {
              checkedCrowd = true;
              if (!this.light) this.light = await this.isCrowded(client);
            }
            if (this.light) {
              this.showProgress(decision.on, lock, latest);
              await client.end().catch(() => {});
              this.client = undefined;
              await this.waitForWake(Math.min(lightDelay, Math.max(0, deadline - Date.now())));
              lightDelay = Math.min(LIGHT_POLL_MAX_MS, lightDelay * 1.5);
              client = this.client = await this.open(
                this.config.connectTimeoutMs,
                Math.max(0, deadline - Date.now()),
              );
              listening = false;
            } else if (!listening) {
              // Listen before the next read, so an outcome committed in between cannot be missed.
              await this.ledger.listen(client);
              listening = true;
            } else {
              this.showProgress(decision.on, lock, latest);
              await this.waitForWake(Math.min(delay, Math.max(0, deadline - Date.now())));
              delay = Math.min(POLL_MAX_MS, delay * 1.5);
            }
            ({ latest } = await this.ledger.readState(client, config.task, this.releaseId));
            if (config.role === "follower") ({ latest, lock } = await this.followerView(client, latest));
            else lock = "not-tried";
            continue;
          }
        }
      } catch (error) {
        if (leading || !isConnectionLoss(error)) throw error;
        client = await this.reconnect(error, deadline);
        listening = false;
        fresh = true;
      }
    }
  }

  /**
   * A follower never takes the lock; it looks whether anyone holds it while an attempt shows running.
   * The leader commits its outcome before it unlocks, so a row that still reads running after the lock
   * was seen free belongs to a leader that is gone.
   */
  private async followerView(
    client: pg.Client,
    latest: AttemptView | undefined,
  ): Promise<{ latest: AttemptView | undefined; lock: LockState }> {
    if (latest?.status !== "running") return { latest, lock: "free" };
    if ((await readLockHolder(client, this.key)) !== undefined) return { latest, lock: "busy" };
    const reread = await this.ledger.readState(client, this.config.task, this.releaseId);
    return { latest: reread.latest, lock: "free" };
  }

  private waitForWake(ms: number): Promise<void> {
    const jittered = ms * (0.8 + Math.random() * 0.4);
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.input.signal?.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, jittered);
      this.wake = done;
      this.input.signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Fields of a --json event: what happened, to which release and attempt. */
  private fields(event: string, attemptId: number | undefined, extra: Record<string, unknown> = {}) {
    return {
      event,
      role: this.config.role,
      release: this.releaseId ?? null,
      task: this.config.task,
      attempt: attemptId ?? null,
      ...extra,
    };
  }

  private progressTimer: NodeJS.Timeout | undefined;
  private progressView: { on: AttemptView | undefined; lock: LockState; latest: AttemptView | undefined } = {
    on: undefined,
    lock: "not-tried",
    latest: undefined,
  };

  /** Shows what this process waits for: at once, then every second on a terminal, every 10 s elsewhere. */
  private showProgress(on: AttemptView | undefined, lock: LockState, latest: AttemptView | undefined): void {
    this.progressView = { on, lock, latest };
    if (this.progressTimer !== undefined) return;
    const show = () => {
      const view = this.progressView;
      this.reporter.progress(this.progressLine(view.on, view.lock, view.latest), {
        ...this.fields("waiting", view.on?.id),
        holder: view.on
          ? { app: view.on.app, role: view.on.role, pid: view.on.pid, since: view.on.startedAt }
          : null,
        elapsedMs: Date.now() - this.startedMs,
        leftMs: Math.max(0, this.startedMs + this.config.waitTimeoutMs - Date.now()),
      });
    };
    show();
    this.progressTimer = setInterval(show, this.reporter.live ? 1000 : PROGRESS_EVERY_MS);
    this.progressTimer.unref();
  }

  private stopProgress(): void {
    if (this.progressTimer !== undefined) clearInterval(this.progressTimer);
    this.progressTimer = undefined;
    this.reporter.endProgress();
  }

  private describeAttempt(attempt: AttemptView): string {
    return `attempt #${attempt.id} by ${attempt.app} (${attempt.role}, pid ${attempt.pid}) of ${this.config.task} for ${this.label}`;
  }

  private progressLine(
    on: AttemptView | undefined,
    lock: LockState,
    latest: AttemptView | undefined,
  ): string {
    const elapsed = formatDuration(Date.now() - this.startedMs);
    const left = formatDuration(Math.max(0, this.startedMs + this.config.waitTimeoutMs - Date.now()));
    const holder = on
      ? `${on.app} (${on.role}, pid ${on.pid}, since ${clock(on.startedAt)})`
      : lock === "busy"
        ? "the lock holder"
        : "a leader";
    const before =
      latest !== undefined && latest.status !== "running" && latest.status !== "succeeded"
        ? ` (the last attempt, #${latest.id} by ${latest.app}, ended ${latest.status}; waiting for a new one)`
        : "";
    return `${this.config.role}; waiting for ${holder} to finish ${this.config.task} for ${this.label}${before} ... ${elapsed} (${left} left)`;
  }

  /** Who this process is, for the ledger's follower outcomes. */
  private outcomeBase() {
    return {
      app: this.app,
      host: this.host,
      pid: process.pid,
      role: this.config.role,
      mode: this.config.followerMode,
      waitedMs: Date.now() - this.startedMs,
    };
  }

  /** Records what a process that did not run the command ended with; never hides the real outcome. */
  private async record(
    client: pg.Client,
    outcome: FollowerOutcome["outcome"],
    exitCode: number,
    attemptId: number | undefined,
  ): Promise<void> {
    try {
      await this.ledger.recordFollowerOutcome(client, {
        ...this.outcomeBase(),
        releaseId: this.releaseId,
        task: this.config.task,
        attemptId,
        outcome,
        exitCode,
      });
    } catch (error) {
      this.reporter.warn(
        `could not record this process's outcome in the ledger: ${(error as Error).message}`,
      );
    }
  }

  private async releaseLock(client: pg.Client): Promise<void> {
    try {
      if (!(await unlock(client, this.key))) this.reporter.warn("the lock was not held when releasing it.");
      await this.ledger.notifyReleased(client);
    } catch (error) {
      this.reporter.warn(
        `could not release the lock cleanly (${(error as Error).message}); it is freed when the session ends.`,
      );
    }
  }

  /** Holding the lock: wait out any earlier leader's lease, record the attempt, run the command, record its outcome. */
  private async lead(client: pg.Client): Promise<RunResult> {
    const { config, reporter } = this;
    const command = config.command;
    if (command === undefined)
      throw new UsageError("No command to run: put it after -- or set RELEASE_COMMAND.");
    let result: RunResult | undefined;
    try {
      await this.waitOutStaleAttempts(client);
      if (this.input.signal?.aborted === true) {
        const code = exitCodeForSignal(this.input.signal.reason);
        this.reporter.info(
          `interrupted by ${String(this.input.signal.reason)} before the command started; nothing was run.`,
          this.fields("interrupted", undefined, { exitCode: code }),
        );
        return this.result("interrupted", code);
      }
      const leaseMs = HEARTBEAT_INTERVAL_MS + HEARTBEAT_TIMEOUT_MS + config.killGraceMs + LEASE_MARGIN_MS;
      const commandText = reporter.redact(describeCommand(command));
      const attempt = await this.ledger.startAttempt(client, {
        releaseId: this.releaseId,
        task: config.task,
        lockName: config.lockName,
        app: this.app,
        host: this.host,
        pid: process.pid,
        role: config.role,
        command: commandText,
        leaseMs,
      });
      reporter.info(
        `${config.role}; running ${config.task} for ${this.label} (attempt #${attempt.id}): ${commandText}`,
        this.fields("running", attempt.id, { command: commandText }),
      );
      result = await this.execute(client, attempt.id, command);
      return result;
    } finally {
      if (result?.outcome !== "lock-lost") await this.releaseLock(client);
    }
  }

  /** A running row while we hold the lock belongs to a leader whose session died; its command may live until its lease ends. */
  private async waitOutStaleAttempts(client: pg.Client): Promise<void> {
    let announced = false;
    for (;;) {
      const stale = await this.ledger.readRunning(client, this.config.task, this.releaseId);
      const first = stale[0];
      if (first === undefined) return;
      const who = `attempt #${first.id} by ${first.app} (pid ${first.pid} on ${first.host})`;
      const leaseLeft = Math.max(...stale.map((s) => s.leaseMs - s.heartbeatAgeMs));
      // Its command's own sessions carry PGAPPNAME naming the attempt: while they are connected, it is alive.
      const orphans = await this.ledger.readAttemptSessions(
        client,
        stale.map((s) => s.id),
      );
      if (leaseLeft <= 0 && orphans.length > 0 && this.config.orphanSessions === "terminate") {
        await this.ledger.terminateSessions(client, orphans);
        this.reporter.warn(
          `${who}: ended ${orphans.length} session(s) its command left connected (--orphan-sessions terminate).`,
        );
        continue;
      }
      if (leaseLeft <= 0 && orphans.length === 0) {
        const ids = await this.ledger.abandonStale(client, this.config.task, this.releaseId);
        this.reporter.warn(
          `taking over: ${who} lost its lock session; recorded as abandoned (#${ids.join(", #")}).`,
        );
        return;
      }
      if (!announced || orphans.length > 0) {
        this.reporter.info(
          orphans.length > 0 && leaseLeft <= 0
            ? `${who} lost its lock session but its command is still connected (backend pid ${orphans.join(", ")}); waiting for it to end before taking over (or pass --orphan-sessions terminate).`
            : `${who} lost its lock session; waiting ${formatDuration(leaseLeft)} for its command to be stopped before taking over.`,
        );
        announced = true;
      }
      await sleep(leaseLeft > 0 ? Math.min(leaseLeft + 50, 5000) : 1000);
    }
  }

  private async execute(client: pg.Client, attemptId: number, command: Command): Promise<RunResult> {
    const { config, reporter } = this;
    const env: Record<string, string | undefined> = {
      ...this.input.env,
      RELEASE_ORCHESTRATOR_ATTEMPT_ID: String(attemptId),
      PGAPPNAME: this.input.env.PGAPPNAME ?? attemptApplicationName(attemptId),
    };
    const started = await startCommand(command, { env, cwd: this.input.cwd, graceMs: config.killGraceMs });
    const startedMs = Date.now();

    let lostReason: string | undefined;
    let interruptedBy: string | undefined;
    let stopping: Promise<CommandResult> | undefined;
    const stop = (signal: NodeJS.Signals) => {
      stopping ??= started.stop(signal, config.killGraceMs);
    };
    let running = true;
    const onLost = (reason: string) => {
      if (lostReason !== undefined || !running) return;
      lostReason = reason;
      reporter.error(`the lock session was lost (${reason}); stopping the command.`);
      stop("SIGTERM");
    };
    const onClientError = (error: Error) => onLost(error.message);
    client.on("error", onClientError);
    client.on("end", () => onLost("the connection closed"));
    const onAbort = () => {
      interruptedBy = String(this.input.signal?.reason ?? "SIGTERM");
      reporter.info(`received ${interruptedBy}; forwarding it to the command.`);
      started.signal(interruptedBy as NodeJS.Signals);
      setTimeout(() => stop("SIGKILL"), config.killGraceMs).unref();
    };
    // A signal that came while the command was being started is forwarded now.
    if (this.input.signal?.aborted === true) onAbort();
    else this.input.signal?.addEventListener("abort", onAbort, { once: true });

    const commandDone = started.result.then(() => undefined);
    const heartbeat = (async () => {
      while (running && lostReason === undefined) {
        await Promise.race([sleep(HEARTBEAT_INTERVAL_MS), commandDone]);
        if (!running) return;
        try {
          const held = await withTimeout(
            this.ledger.heartbeat(client, attemptId, this.key),
            HEARTBEAT_TIMEOUT_MS,
          );
          if (!held) onLost("this session no longer holds the advisory lock");
        } catch (error) {
          onLost((error as Error).message);
        }
      }
    })();

    const result = await started.result;
    running = false;
    this.input.signal?.removeEventListener("abort", onAbort);
    if (stopping !== undefined) await stopping;
    await heartbeat;
    const durationMs = Date.now() - startedMs;
    const outputTail = reporter.redact(result.outputTail);

    if (lostReason !== undefined) {
      await this.recordLost(attemptId, result, outputTail);
      return this.result("lock-lost", ExitCode.lockLost, attemptId);
    }
    client.removeListener("error", onClientError);

    const status =
      result.exitCode === 0 ? "succeeded" : interruptedBy !== undefined ? "interrupted" : "failed";
    const outcome: AttemptOutcome = {
      status,
      exitCode: result.signal === null ? result.exitCode : null,
      signal: result.signal,
      outputTail,
    };
    try {
      await this.ledger.finishAttempt(client, attemptId, outcome);
    } catch (error) {
      if (!isConnectionLoss(error)) throw error;
      // The command has ended; only its record is missing. Write it on a fresh connection.
      if (!(await this.recordOnFreshConnection(attemptId, outcome))) {
        reporter.error(
          `the command ${describeExit(result)}, but its outcome could not be recorded because the database connection was lost; check the ledger before retrying.`,
        );
        return this.result("lock-lost", ExitCode.lockLost, attemptId);
      }
    }
    if (interruptedBy !== undefined) {
      reporter.info(
        `the command ended after ${interruptedBy} (${describeExit(result)}); attempt #${attemptId} recorded as ${status}.`,
        this.fields("interrupted", attemptId, { exitCode: exitCodeForSignal(interruptedBy), status }),
      );
      return this.result("interrupted", exitCodeForSignal(interruptedBy), attemptId);
    }
    if (status === "succeeded") {
      reporter.info(
        `${config.task} succeeded for ${this.label} in ${formatDuration(durationMs)} (attempt #${attemptId}).`,
        this.fields("ran", attemptId, { exitCode: 0, durationMs }),
      );
      return this.result("ran", ExitCode.ok, attemptId);
    }
    reporter.error(
      `${config.task} failed for ${this.label}: the command ${describeExit(result)} (attempt #${attemptId}).`,
      this.fields("command-failed", attemptId, {
        exitCode: result.exitCode,
        signal: result.signal,
        durationMs,
      }),
    );
    return this.result("command-failed", result.exitCode, attemptId);
  }

  /** The lock session is gone: record the outcome on a fresh connection if we can; the next leader does otherwise. */
  private async recordLost(attemptId: number, result: CommandResult, outputTail: string): Promise<void> {
    await this.recordOnFreshConnection(attemptId, {
      status: "lost",
      exitCode: result.signal === null ? result.exitCode : null,
      signal: result.signal,
      outputTail,
    });
    this.reporter.error(
      `the command was stopped because the lock was lost (attempt #${attemptId}); check the database connection and retry the release.`,
    );
  }

  private async recordOnFreshConnection(attemptId: number, outcome: AttemptOutcome): Promise<boolean> {
    try {
      const fresh = await this.open(5000);
      try {
        await this.ledger.finishAttempt(fresh, attemptId, outcome);
        return true;
      } finally {
        await fresh.end().catch(() => {});
      }
    } catch (error) {
      this.reporter.warn(
        `could not record attempt #${attemptId} as ${outcome.status}: ${(error as Error).message}`,
      );
      return false;
    }
  }
}

function describeExit(result: CommandResult): string {
  return result.signal === null ? `exited with code ${result.exitCode}` : `was killed by ${result.signal}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no answer from the database within ${formatDuration(ms)}`)),
      ms,
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
