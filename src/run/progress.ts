// What a waiting process shows: who it waits for, since when, and for what; refreshed in place on a
// terminal, every 10 s in logs, and only when it changes for what is worth one line (takeover steps).

import type { AttemptView, WaitReason } from "../core/decide.js";
import { formatDuration } from "../core/duration.js";
import type { EventName } from "../core/events.js";
import { describeStalled } from "../core/ownership.js";
import { fields, type RunContext } from "./context.js";

/** Progress lines while waiting, when stderr is not a terminal (Heroku logs, CI). */
const PROGRESS_EVERY_MS = 10_000;

function clock(iso: string): string {
  return iso.slice(11, 19);
}

export function describeAttempt(ctx: RunContext, attempt: AttemptView): string {
  const release =
    attempt.releaseId === (ctx.release?.id ?? null)
      ? ctx.label
      : `release ${attempt.releaseId ?? "(unversioned)"}`;
  return `attempt #${attempt.id} by ${attempt.app} (${attempt.role}, pid ${attempt.pid}) of ${ctx.config.task} for ${release}`;
}

export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private view: { on: AttemptView | undefined; until: WaitReason; latest: AttemptView | undefined } = {
    on: undefined,
    until: "outcome",
    latest: undefined,
  };
  /** Takeover notes already shown, so that a repeated state is said once. */
  private readonly said = new Set<string>();

  constructor(private readonly ctx: RunContext) {}

  /** Shows what this process waits for: at once, then every second on a terminal, every 10 s elsewhere. */
  show(on: AttemptView | undefined, until: WaitReason, latest: AttemptView | undefined): void {
    this.view = { on, until, latest };
    this.note(on, until);
    if (this.timer !== undefined) return;
    const { ctx } = this;
    const draw = () => {
      const view = this.view;
      ctx.reporter.progress(this.line(view.on, view.until, view.latest), {
        ...fields(ctx, "waiting", view.on?.id),
        holder: view.on
          ? { app: view.on.app, role: view.on.role, pid: view.on.pid, since: view.on.startedAt }
          : null,
        until: view.until,
        elapsedMs: Date.now() - ctx.startedMs,
        leftMs: Math.max(0, ctx.deadline - Date.now()),
      });
    };
    draw();
    this.timer = setInterval(draw, ctx.reporter.live ? 1000 : PROGRESS_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.ctx.reporter.endProgress();
  }

  /** Says once, per attempt and per set of sessions, why a takeover has to wait. */
  private note(on: AttemptView | undefined, until: WaitReason): void {
    if (on === undefined || until === "outcome") return;
    const orphans = on.lease?.orphans ?? [];
    const key = `${on.id}:${until}:${orphans.join(",")}`;
    if (this.said.has(key)) return;
    this.said.add(key);
    const who = `${describeAttempt(this.ctx, on)} on ${on.host}`;
    const { message, event } = waitNote(who, on, until, orphans);
    this.ctx.reporter.info(message, fields(this.ctx, event, on.id, { backendPids: orphans }));
  }

  private line(on: AttemptView | undefined, until: WaitReason, latest: AttemptView | undefined): string {
    const { ctx } = this;
    const elapsed = formatDuration(Date.now() - ctx.startedMs);
    const left = formatDuration(Math.max(0, ctx.deadline - Date.now()));
    const holder = on ? `${on.app} (${on.role}, pid ${on.pid}, since ${clock(on.startedAt)})` : "a leader";
    const what =
      until === "outcome"
        ? `to finish ${ctx.config.task} for ${ctx.label}`
        : until === "lease"
          ? `whose session is gone: its lease ends in ${formatDuration(Math.max(0, on?.lease?.leftMs ?? 0))}`
          : until === "stalled"
            ? `whose leader is stalled: connected, lease not renewed for ${formatDuration(on?.lease?.renewedMsAgo ?? 0)}`
            : "whose command's sessions are still connected";
    const before =
      latest !== undefined && latest.status !== "running" && latest.status !== "succeeded"
        ? ` (the last attempt, #${latest.id} by ${latest.app}, ended ${latest.status}; waiting for a new one)`
        : "";
    return `${ctx.config.role}; waiting for ${holder} ${what}${before} ... ${elapsed} (${left} left)`;
  }
}

/**
 * Why a takeover (or a follower) has to wait, in one sentence, and the --json event that names it.
 * A leader whose session is gone may leave its command's sessions behind (its supervisor killed with
 * it, a statement the server has not yet noticed is orphaned): the lease is not the last wait.
 */
export function waitNote(
  who: string,
  on: AttemptView,
  until: Exclude<WaitReason, "outcome">,
  orphans: readonly number[],
): { message: string; event: EventName } {
  switch (until) {
    case "orphans":
      return {
        message: `${who}: its lease expired but its command is still connected (backend pid ${orphans.join(", ")}); waiting for those sessions to end before taking over (or pass --orphan-sessions terminate).`,
        event: "orphan-sessions",
      };
    case "stalled":
      return {
        message: `${who}: ${on.app}'s leader is stalled: ${describeStalled(on.lockBackendPid, on.lease?.renewedMsAgo ?? 0)} Waiting for it.`,
        event: "stalled-leader",
      };
    case "lease":
      return {
        message: `${who}: its leader's session is gone; waiting ${formatDuration(Math.max(0, on.lease?.leftMs ?? 0))} for its lease to expire, then for any session its command still has connected to end, before taking over.`,
        event: "stale-owner",
      };
  }
}
