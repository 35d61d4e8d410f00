// Notifications: a JSON POST to RELEASE_NOTIFY_URL when an attempt ends and when a follower gives up
// waiting. buildNotification is pure; sendNotification retries with backoff within a 10 s budget and
// never throws. Neither ever prints the URL (it may hold a token, as a Slack webhook's path does).

import type { Config } from "../core/config.js";
import { passwordOf } from "../core/config.js";
import { formatDuration } from "../core/duration.js";
import type { Reporter } from "../core/reporter.js";

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
  if (id === null) return "(unversioned)";
  return /^[0-9a-f]{40}$/.test(id) ? id.slice(0, 7) : id;
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
      return `was ABANDONED: its leader's lock session is gone (after ${after})`;
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
    at: now.toISOString(),
  };
}

// ------------------------------------------------------------------------------------------ send

/** The whole time a notification may take, retries included: it must never hold up a release for long. */
export const NOTIFY_BUDGET_MS = 10_000;
/** One request's limit, within what is left of the budget. */
const REQUEST_TIMEOUT_MS = 4000;
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 2000;

/** Pauses before each retry: 250 ms, doubling to at most 2 s. Pure. */
export function retryDelay(retry: number): number {
  return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.max(0, retry - 1));
}

export interface NotifyResult {
  delivered: boolean;
  /** POSTs sent (requests started). */
  attempts: number;
  /** The last HTTP status received, if any. */
  status?: number;
  /** Why it was not delivered, in words that never include the URL. */
  problem?: string;
}

export interface SendOptions {
  budgetMs?: number;
  /** Tests and library users may pass their own fetch. */
  fetch?: typeof fetch;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Why a request failed, without the URL: an error code or a class of failure. */
function describeFailure(error: unknown): string {
  const err = error as { name?: string; cause?: { code?: string; name?: string } };
  if (err.name === "TimeoutError" || err.cause?.name === "TimeoutError") return "no answer in time";
  const code = err.cause?.code;
  if (typeof code === "string" && /^[A-Z_0-9]+$/.test(code)) return `connection failed (${code})`;
  return "connection failed";
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * POSTs the payload; retries connection failures, timeouts, 408, 429 and 5xx with backoff until the
 * budget is spent. Never throws, never follows a redirect (it would send the body elsewhere).
 */
export async function sendNotification(
  url: string,
  payload: NotificationPayload,
  options: SendOptions = {},
): Promise<NotifyResult> {
  const budget = options.budgetMs ?? NOTIFY_BUDGET_MS;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const post = options.fetch ?? fetch;
  const deadline = now() + budget;
  const body = JSON.stringify(payload);
  let attempts = 0;
  let status: number | undefined;
  let problem = "not sent";
  for (;;) {
    const left = deadline - now();
    if (left <= 0) break;
    attempts++;
    try {
      const response = await post(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "release-orchestrator" },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(Math.min(REQUEST_TIMEOUT_MS, left)),
      });
      status = response.status;
      await response.body?.cancel().catch(() => {});
      if (status >= 200 && status < 300) return { delivered: true, attempts, status };
      problem =
        status >= 300 && status < 400
          ? `the receiver answered HTTP ${status} (a redirect; set RELEASE_NOTIFY_URL to where it points)`
          : `the receiver answered HTTP ${status}`;
      if (!retryable(status)) return { delivered: false, attempts, status, problem };
    } catch (error) {
      problem = describeFailure(error);
    }
    const pause = retryDelay(attempts);
    // Retry only if the pause leaves time for another request.
    if (now() + pause >= deadline) break;
    await sleep(pause);
  }
  return { delivered: false, attempts, ...(status === undefined ? {} : { status }), problem };
}

/**
 * Sends one notification for an event when RELEASE_NOTIFY_URL is set; resolves within the budget and
 * never throws, so a receiver that is down cannot change a release's outcome or exit code. Logs one
 * warning when it could not deliver, and a debug line when it did; neither names the URL.
 */
export async function notifyOutcome(
  config: Pick<Config, "notifyUrl" | "databaseUrl" | "serveToken">,
  event: NotifyEvent,
  reporter: Reporter,
  options: SendOptions = {},
): Promise<NotifyResult | undefined> {
  const url = config.notifyUrl;
  if (url === undefined) return undefined;
  try {
    reporter.addSecret(passwordOf(config.databaseUrl));
    reporter.addSecret(config.serveToken);
    reporter.addSecret(url);
    const payload = buildNotification(event, (text) => reporter.redact(text));
    const result = await sendNotification(url, payload, options);
    if (result.delivered) {
      reporter.debug(`notification sent (${event.status}, ${result.attempts} request(s)).`);
    } else {
      reporter.warn(
        `could not send the notification (${event.status}) to RELEASE_NOTIFY_URL: ${result.problem ?? "unknown"} after ${result.attempts} request(s); the release's outcome is unchanged.`,
      );
    }
    return result;
  } catch (error) {
    // A bug here must not change a release's outcome either.
    reporter.warn(
      `could not send the notification (${event.status}): ${error instanceof Error ? error.name : "error"}; the release's outcome is unchanged.`,
    );
    return { delivered: false, attempts: 0, problem: "internal error" };
  }
}
