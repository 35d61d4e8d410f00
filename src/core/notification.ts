// Notifications, as pure builders: the event when an attempt ends or a follower gives up waiting, and
// the JSON body POSTed to RELEASE_NOTIFY_URL (run/notify.ts sends it). Nothing here knows the URL.

import { formatDuration } from "./duration.js";
import { describeTry, type LockTry } from "./lock-guard.js";
import { ABANDONED_BECAUSE } from "./ownership.js";
import { describePhase, type ReleasePhase } from "./release-phase.js";
import { shortReleaseId } from "./release-id.js";

/** How an attempt ended, or "timeout" when a follower gave up waiting. */
export type NotifyStatus = "succeeded" | "failed" | "lost" | "interrupted" | "abandoned" | "timeout";

export interface NotifyEvent {
  /** attempt-finished: an attempt ended (ran by this process, or found abandoned); follower-timeout: this process gave up waiting. */
  kind: "attempt-finished" | "follower-timeout";
  releaseId: string | null | undefined;
  task: string;
  /** The app that ran the attempt, or the follower that timed out. */
  app: string;
  /** The role it ran with (auto, leader, follower). */
  role: string;
  status: NotifyStatus;
  /** The command's exit code (null when a signal ended it); for a timeout, the follower's own (75). */
  exitCode: number | null;
  signal?: string | null | undefined;
  /** How long the attempt ran, or how long the follower waited. */
  durationMs: number;
  /** The attempt that ended, or the one a follower waited for. */
  attemptId?: number | undefined;
  host?: string | undefined;
  /** The end of the command's output, already scrubbed by the process that recorded it; scrubbed again here. */
  outputTail?: string | null | undefined;
  /** follower-timeout: the app whose attempt it waited for, when there was one. */
  leaderApp?: string | undefined;
  /** The tries the lock-queue guard cancelled during the attempt, oldest first. */
  tries?: LockTry[] | undefined;
  /** The release as a whole when it runs from tasks files, read as the attempt ended. */
  phase?: ReleasePhase | null | undefined;
}

/** The JSON body. `text` makes a Slack incoming webhook (and most chat webhooks) show a readable line. */
export interface NotificationPayload {
  text: string;
  event: NotifyEvent["kind"];
  release: string | null;
  task: string;
  app: string;
  role: string;
  status: NotifyStatus;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  attempt: number | null;
  host: string | null;
  leaderApp: string | null;
  outputTail: string | null;
  /** The lock-queue guard's cancelled tries (each: when, how long it waited, what blocked it); empty when none. */
  tries: LockTry[];
  /** The release as a whole (each task with its scope, runs, outcome, what is pending) when it runs from tasks files; else null. */
  phase: ReleasePhase | null;
  /** When this notification was built (ISO 8601). */
  at: string;
}

/** Most lines of output a notification carries, and how many of them its text shows. */
export const TAIL_LINES = 40;
export const TEXT_TAIL_LINES = 10;
const TAIL_CHARS = 4000;

/** The end of an output: its last TAIL_LINES lines, at most TAIL_CHARS characters. */
function lastLines(text: string, lines: number, chars: number): string {
  const kept = text.replace(/\s+$/, "").split("\n").slice(-lines).join("\n");
  return kept.length > chars ? `…${kept.slice(-chars)}` : kept;
}

/** Slack's mrkdwn needs &, < and > escaped; a tail must not close its own code block. */
const slackEscape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function shortRelease(id: string | null): string {
  return id === null ? "(unversioned)" : shortReleaseId(id);
}

function describeEnd(event: NotifyEvent): string {
  const after = formatDuration(event.durationMs);
  const code =
    event.signal != null
      ? `killed by ${event.signal}`
      : event.exitCode === null
        ? "no exit code"
        : `exit code ${event.exitCode}`;
  switch (event.status) {
    case "succeeded":
      return `succeeded in ${after}`;
    case "failed":
      return `FAILED with ${code} after ${after}`;
    case "lost":
      return `LOST its lock after ${after}; the command was stopped (${code})`;
    case "interrupted":
      return `was interrupted after ${after} (${code})`;
    case "abandoned":
      return `was ABANDONED: ${ABANDONED_BECAUSE} (after ${after})`;
    case "timeout":
      return `TIMED OUT after waiting ${after} (exit ${event.exitCode ?? 75})`;
  }
}

/** Builds the JSON body; `scrub` removes secrets (the database password) from every string. Pure. */
export function buildNotification(
  event: NotifyEvent,
  scrub: (text: string) => string,
  now: Date = new Date(),
): NotificationPayload {
  const release = event.releaseId ?? null;
  const tail =
    event.outputTail === null || event.outputTail === undefined || event.outputTail.trim() === ""
      ? null
      : lastLines(scrub(event.outputTail), TAIL_LINES, TAIL_CHARS);
  const attempt = event.attemptId === undefined ? "" : ` (attempt #${event.attemptId})`;
  const where = `${event.task} for release ${shortRelease(release)}`;
  let text =
    event.kind === "follower-timeout"
      ? `release-orchestrator: ${event.app} (${event.role}) ${describeEnd(event)} for ${where}` +
        `${event.leaderApp === undefined ? "" : `, led by ${event.leaderApp}`}${attempt}.`
      : `release-orchestrator: ${event.app} (${event.role}): ${where} ${describeEnd(event)}${attempt}.`;
  const tries = event.tries ?? [];
  for (const t of tries.slice(-5)) text += `\nlock guard: ${describeTry(t)}.`;
  const phase = event.phase ?? null;
  if (phase !== null) text += `\n${describePhase(phase).join("\n")}`;
  text = slackEscape(scrub(text));
  if (tail !== null && event.status !== "succeeded") {
    const shown = lastLines(tail, TEXT_TAIL_LINES, 1500).replace(/```/g, "'''");
    text += `\n\`\`\`\n${slackEscape(shown)}\n\`\`\``;
  }
  return {
    text,
    event: event.kind,
    release: release === null ? null : scrub(release),
    task: scrub(event.task),
    app: scrub(event.app),
    role: event.role,
    status: event.status,
    exitCode: event.exitCode,
    signal: event.signal ?? null,
    durationMs: Math.max(0, Math.round(event.durationMs)),
    attempt: event.attemptId ?? null,
    host: event.host === undefined ? null : scrub(event.host),
    leaderApp: event.leaderApp === undefined ? null : scrub(event.leaderApp),
    outputTail: tail,
    tries: tries.map((t) => ({
      ...t,
      blocker: {
        ...t.blocker,
        applicationName: t.blocker.applicationName === null ? null : scrub(t.blocker.applicationName),
        query: t.blocker.query === null ? null : scrub(t.blocker.query),
      },
    })),
    phase:
      phase === null
        ? null
        : (JSON.parse(
            JSON.stringify(phase, (_key, value: unknown) =>
              typeof value === "string" ? scrub(value) : value,
            ),
          ) as ReleasePhase),
    at: now.toISOString(),
  };
}

/** What an attempt that ended is known by: its row's identity (ran by this process, or found abandoned). */
export interface EndedAttempt {
  id: number;
  releaseId: string | null | undefined;
  task: string;
  app: string;
  role: string;
  host: string;
}

/** The one builder of the attempt-finished event, whoever ended the attempt. */
export function attemptFinished(
  attempt: EndedAttempt,
  status: Exclude<NotifyStatus, "timeout">,
  end: {
    exitCode: number | null;
    signal: string | null;
    durationMs: number;
    outputTail?: string;
    tries?: LockTry[];
  },
): NotifyEvent {
  return {
    kind: "attempt-finished",
    releaseId: attempt.releaseId,
    task: attempt.task,
    app: attempt.app,
    role: attempt.role,
    status,
    exitCode: end.signal === null ? end.exitCode : null,
    signal: end.signal,
    durationMs: end.durationMs,
    attemptId: attempt.id,
    host: attempt.host,
    outputTail: end.outputTail ?? "",
    tries: end.tries ?? [],
  };
}
