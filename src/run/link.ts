// The run's database connection: opened with retries, proven (or not) to be a session of its own,
// reopened after a loss, and the NOTIFY wake-up for waiters. One place opens and closes it.

import type pg from "pg";
import {
  applicationName,
  connect,
  connectionSettings,
  describeTarget,
  isConnectionLoss,
  isServerBusy,
} from "../db/connect.js";
import { formatDuration } from "../core/duration.js";
import { provesOwnSession } from "../db/session.js";
import { shortReleaseId } from "../core/release-id.js";
import type { RunContext } from "./context.js";

export class Link {
  private current: pg.Client | undefined;
  /** This connection is its own backend's session (no pooler in between): LISTEN and the lock work. */
  proven = false;
  /** The server refused us for too many clients, or is more than half full: wait without a connection. */
  crowded = false;
  /** Whether the server's crowding was looked at (once, before the first wait). */
  crowdChecked = false;
  private listening = false;
  private wake: (() => void) | undefined;

  constructor(private readonly ctx: RunContext) {}

  /** The open connection, opening one if needed; `busyMs` is how long a crowded server is worth retrying. */
  async client(timeoutMs = this.ctx.config.connectTimeoutMs, busyMs?: number): Promise<pg.Client> {
    if (this.current !== undefined) return this.current;
    this.current = await this.open(timeoutMs, busyMs ?? Math.max(timeoutMs, this.ctx.deadline - Date.now()));
    this.proven = await provesOwnSession(this.current);
    this.ctx.reporter.debug(
      this.proven
        ? "the connection is a session of its own: waiters listen, the leader holds the advisory lock"
        : "the connection is not proven to be a session of its own (a pooler, proxy or NAT): the lease alone decides, waiters poll",
    );
    return this.current;
  }

  /**
   * Opens a separate connection (a leader recording its outcome after its own connection died; the lock
   * guard, whose session's name starts with `purpose`, never to be mistaken for the lock session).
   * `stop` ends it while it is being made (the guard stopped: the command ended).
   */
  async open(
    timeoutMs: number,
    busyMs = timeoutMs,
    purpose?: string,
    stop?: AbortSignal,
  ): Promise<pg.Client> {
    const { config, reporter } = this.ctx;
    // The settings every command shares (PGSSLMODE from .env included); the run sets the time budgets.
    const settings = connectionSettings(config, "run");
    const url = settings.url;
    const release = this.ctx.release === undefined ? "unversioned" : shortReleaseId(this.ctx.release.id);
    const client = await connect({
      ...settings,
      applicationName: applicationName([
        ...(purpose === undefined ? [] : [purpose]),
        this.ctx.app,
        config.role,
        release,
      ]),
      timeoutMs,
      busyTimeoutMs: busyMs,
      signal:
        stop === undefined || this.ctx.signal === undefined
          ? (stop ?? this.ctx.signal)
          : AbortSignal.any([this.ctx.signal, stop]),
      onRetry: (error, attempt, delay) => {
        if (isServerBusy(error)) this.crowded = true;
        reporter.debug(
          `connect attempt ${attempt} to ${describeTarget(url)} failed (${(error as Error).message}); retrying in ${formatDuration(delay)}`,
        );
      },
    });
    client.on("notification", () => this.wake?.());
    return client;
  }

  /**
   * Runs a ledger step on the connection; a lost connection (a restarting server, a cut network) is
   * reopened and the step tried again, within the wait timeout. Leading never comes through here: its
   * session and its lease have rules of their own (ownership.ts).
   */
  async step<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const { ctx } = this;
    for (;;) {
      try {
        return await fn(await this.client());
      } catch (error) {
        if (!isConnectionLoss(error) || Date.now() >= ctx.deadline) throw error;
        ctx.reporter.warn(
          `lost the database connection while waiting (${(error as Error).message}); reconnecting.`,
          {
            event: "reconnecting",
          },
        );
        await this.drop();
        const left = Math.max(0, ctx.deadline - Date.now());
        await this.client(Math.max(ctx.config.connectTimeoutMs, left), left);
      }
    }
  }

  /** Drops the connection (lost, or given back to a crowded server between polls). */
  async drop(): Promise<void> {
    const client = this.current;
    this.current = undefined;
    this.listening = false;
    await client?.end().catch(() => {});
  }

  /** Listens for the ledger's NOTIFY before the next read, so an outcome committed in between is not missed. */
  async listen(listen: (client: pg.Client) => Promise<void>): Promise<void> {
    if (this.listening || this.current === undefined) return;
    await listen(this.current);
    this.listening = true;
  }

  /** Sleeps up to `ms`, ending early on a NOTIFY or when the run is interrupted. */
  sleep(ms: number): Promise<void> {
    const signal = this.ctx.signal;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms * (0.8 + Math.random() * 0.4));
      this.wake = done;
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  async close(): Promise<void> {
    this.wake = undefined;
    await this.drop();
  }
}
