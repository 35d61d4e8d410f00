// The status page's script, run in the browser: it fetches api/releases every few seconds and builds
// the DOM with text nodes only (never innerHTML), so output tails and app names are always shown as
// text. The texts that follow the tool's rules (the short release id, durations) come ready from the
// server (operator/releases-api.ts); the page only adds times of day, in the viewer's time zone.
// scripts/build-page.mjs bundles it with dom.ts and release.ts (an ES2019 IIFE) into
// generated-assets.ts, which serve-page.ts inlines; this folder's tsconfig.json checks them with the
// DOM's types and without node's.

import type { PageData, PageRelease } from "./api.js";
import { add, byId, clock, el } from "./dom.js";
import { renderRelease } from "./release.js";

/** How often the page fetches api/releases again. */
const REFRESH_MS = 5000;

const limit = new URLSearchParams(location.search).get("limit");
const API = "api/releases" + (limit ? "?limit=" + encodeURIComponent(limit) : "");

/** What the page remembers between refreshes. */
const state = {
  lastText: null as string | null,
  lastUpdate: null as number | null,
  timer: undefined as number | undefined,
};

/** Per app, how many attempts it led and how many times it waited; and the legend of the bars. */
function renderOverview(releases: PageRelease[]): HTMLElement {
  const apps = new Map<string, { led: number; waited: number }>();
  const count = (app: string) => {
    let c = apps.get(app);
    if (c === undefined) apps.set(app, (c = { led: 0, waited: 0 }));
    return c;
  };
  for (const r of releases) {
    for (const a of r.attempts) {
      count(a.app).led++;
      for (const f of a.followers) count(f.app).waited++;
    }
    for (const f of r.others) count(f.app).waited++;
  }
  const box = el("div", "overview");
  for (const app of [...apps.keys()].sort()) {
    const c = count(app);
    add(box, add(el("span", "chip"), el("b", null, app), " led " + c.led + " · waited " + c.waited));
  }
  const legend = el("span", "legend");
  const entries = [
    ["ran ok", "bar ran succeeded"],
    ["failed", "bar ran failed"],
    ["running", "bar ran running"],
    ["waited", "bar wait"],
  ];
  for (const [label, bar] of entries) add(legend, add(el("span"), el("span", bar), label));
  return add(box, legend);
}

function renderLock(data: PageData): void {
  const holder = data.lock.holder;
  const lock = byId("lock");
  lock.className = "lock" + (holder ? " held" : "");
  const who = holder?.applicationName ? ` (${holder.applicationName})` : "";
  const since = holder?.since ? " since " + clock(Date.parse(holder.since)) : "";
  lock.replaceChildren(
    el("span", "dot"),
    holder ? `lock held by pid ${holder.pid}${who}${since}` : "lock free",
  );
}

function render(data: PageData): void {
  const main = byId("releases");
  const tails = () => main.querySelectorAll<HTMLPreElement>("details[data-attempt] pre");
  const attemptOf = (pre: HTMLPreElement) => pre.parentElement?.getAttribute("data-attempt") ?? "";
  const fromBottom = new Map<string, number>();
  tails().forEach((pre) =>
    fromBottom.set(attemptOf(pre), pre.scrollHeight - pre.scrollTop - pre.clientHeight),
  );
  const fragment = document.createDocumentFragment();
  if (data.releases.length === 0) {
    fragment.appendChild(
      el(
        "p",
        "empty",
        `No releases in the ledger (schema ${data.schema}) yet. They appear here as soon as release-orchestrator run records an attempt.`,
      ),
    );
  } else {
    fragment.appendChild(renderOverview(data.releases));
    for (const r of data.releases) fragment.appendChild(renderRelease(r));
  }
  main.replaceChildren(fragment);
  // Output tails end with what matters: keep them scrolled to the bottom unless the reader scrolled up.
  tails().forEach((pre) => {
    pre.scrollTop = pre.scrollHeight - pre.clientHeight - (fromBottom.get(attemptOf(pre)) ?? 0);
  });
  renderLock(data);
}

/** The header's live indicator, and the banner that says why the page is not updating. */
function showLive(ok: boolean, message: string): void {
  const live = byId("live");
  live.className = "live " + (ok ? "ok" : "down");
  const when = state.lastUpdate === null ? "" : (ok ? "updated " : "last update ") + clock(state.lastUpdate);
  live.replaceChildren(
    el("span", "dot"),
    ok ? "live · " + when : "not updating · retrying" + (when ? " · " + when : ""),
  );
  const banner = byId("banner");
  banner.hidden = ok;
  banner.textContent = ok ? "" : message;
}

/** The body of api/releases; throws an Error whose message the banner shows. */
async function fetchReleases(): Promise<string> {
  const response = await fetch(API, { cache: "no-cache", headers: { accept: "application/json" } });
  const text = await response.text();
  if (response.status === 401) {
    throw new Error(
      "The server no longer accepts this page's credentials (HTTP 401; RELEASE_SERVE_TOKEN may have changed): reload the page and sign in with the token as the password.",
    );
  }
  if (!response.ok) {
    let message = "The status page could not read the ledger (HTTP " + response.status + ").";
    try {
      const body = JSON.parse(text) as { error?: unknown };
      if (typeof body.error === "string" && body.error !== "") message = body.error;
    } catch {
      // Not JSON: keep the status.
    }
    throw new Error(message);
  }
  return text;
}

async function refresh(): Promise<void> {
  clearTimeout(state.timer);
  try {
    const text = await fetchReleases();
    const data = JSON.parse(text) as PageData;
    state.lastUpdate = Date.now();
    // The server's texts change while a release runs; otherwise the same text draws the same page.
    if (text !== state.lastText) render(data);
    state.lastText = text;
    showLive(true, "");
  } catch (error) {
    showLive(
      false,
      error instanceof TypeError
        ? "The status page's server does not answer; retrying."
        : (error as Error).message,
    );
  }
  state.timer = setTimeout(() => void refresh(), REFRESH_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) void refresh();
});
void refresh();
