// Sending notifications: a JSON POST to RELEASE_NOTIFY_URL (built by core/notification.ts), retried
// with backoff within a 10 s budget; it never throws and never prints the URL (it may hold a token, as
// a Slack webhook's path does), so a receiver that is down cannot change a release's outcome.

import { setTimeout as sleepFor } from "node:timers/promises";
import type { Config } from "../core/config.js";
import { buildNotification, type NotificationPayload, type NotifyEvent } from "../core/notification.js";
import type { Reporter } from "../core/reporter.js";
import { passwordOf } from "../core/secrets.js";

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

const defaultSleep = (ms: number) => sleepFor(ms);

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
