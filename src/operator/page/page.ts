// The status page's script, run in the browser: it fetches api/releases every few seconds and builds
// the DOM with text nodes only (never innerHTML), so output tails and app names are always shown as
// text. scripts/build-page.mjs transpiles it (an ES2019 IIFE) into generated-assets.ts, which
// serve-page.ts inlines; its own tsconfig.json checks it with the DOM's types and without node's.

import type { PageAttempt, PageData, PageFollower, PageRelease } from "./api.js";

/** How often the page fetches api/releases again. */
const REFRESH_MS = 5000;

const limit = new URLSearchParams(location.search).get("limit");
const API = "api/releases" + (limit ? "?limit=" + encodeURIComponent(limit) : "");

/** What the page remembers between refreshes. */
const state = {
  lastText: null as string | null,
  lastUpdate: null as number | null,
  timer: undefined as number | undefined,
  /** Failure outputs (open by default) the reader closed, and other outputs they opened, by attempt id. */
  closedByUser: new Set<string>(),
  openedByUser: new Set<string>(),
};

interface RanItem {
  kind: "ran";
  start: number;
  end: number;
  attempt: PageAttempt;
}
interface WaitItem {
  kind: "wait";
  start: number;
  end: number;
  follower: PageFollower;
  /** The attempt it waited on, if any. */
  attempt: PageAttempt | null;
}
type Item = RanItem | WaitItem;
interface Lane {
  app: string;
  items: Item[];
}

// ------------------------------------------------------------------------------------------- DOM

function byId(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the status page has no #${id}`);
  return node;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string | null,
  text?: string | number | null,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** Appends children to `parent`, strings as text nodes; null and undefined are skipped. */
function add<T extends Node>(parent: T, ...children: (Node | string | null | undefined)[]): T {
  for (const child of children) {
    if (child === null || child === undefined) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return parent;
}

// ------------------------------------------------------------------------------------------- text

function pad(n: number): string {
  return (n < 10 ? "0" : "") + n;
}

function clock(ms: number): string {
  const d = new Date(ms);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

function day(ms: number): string {
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
}

function duration(ms: number): string {
  ms = Math.max(0, ms);
  if (ms < 10000) return (ms / 1000).toFixed(1) + " s";
  let s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  s = s % 60;
  if (m < 60) return m + " min" + (s ? " " + s + " s" : "");
  return Math.floor(m / 60) + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
}

function shortId(id: string | null): string {
  if (id === null) return "(unversioned)";
  return /^[0-9a-f]{40}$/.test(id) ? id.slice(0, 7) : id;
}

function exitText(a: PageAttempt): string {
  if (a.signal) return "signal " + a.signal;
  return a.exitCode === null ? "no exit code" : "exit code " + a.exitCode;
}

// ------------------------------------------------------------------------------------------- release

/** Every bar of a release, by app: the attempts it ran and how long the others waited. */
function lanesOf(release: PageRelease, now: number): Lane[] {
  const lanes = new Map<string, Lane>();
  const lane = (app: string): Lane => {
    let found = lanes.get(app);
    if (found === undefined) lanes.set(app, (found = { app, items: [] }));
    return found;
  };
  const follower = (f: PageFollower, attempt: PageAttempt | null): void => {
    const end = Date.parse(f.recordedAt);
    lane(f.app).items.push({ kind: "wait", start: end - f.waitedMs, end, follower: f, attempt });
  };
  for (const a of release.attempts) {
    const start = Date.parse(a.startedAt);
    const end = a.finishedAt ? Date.parse(a.finishedAt) : Math.max(now, start);
    lane(a.app).items.push({ kind: "ran", start, end, attempt: a });
    for (const f of a.followers) follower(f, a);
  }
  for (const f of release.others) follower(f, null);
  return [...lanes.keys()].sort().map((app) => lane(app));
}

function describeRan(item: RanItem, now: number): HTMLElement {
  const a = item.attempt;
  const span = add(el("span"), el("b", null, "led"), " · ");
  if (a.status === "succeeded") add(span, "ran " + duration(item.end - item.start) + " · exit 0");
  else if (a.status === "running") {
    add(span, "running for " + duration(now - item.start));
    if (a.blockedText) add(span, " · ", el("span", "bad blocked", "blocked: " + a.blockedText));
  } else {
    add(span, el("span", "bad", a.status + ", " + exitText(a)), " after " + duration(item.end - item.start));
  }
  return span;
}

function describeWait(item: WaitItem): HTMLElement {
  const span = el("span");
  const f = item.follower;
  const leader = item.attempt ? " for " + item.attempt.app : "";
  const waited = duration(f.waitedMs);
  switch (f.outcome) {
    case "succeeded":
      return add(span, el("b", null, "waited " + waited), leader + " · succeeded");
    case "failed":
      return add(
        span,
        el("b", null, "waited " + waited),
        leader + " · ",
        el("span", "bad", "leader failed (exit " + f.exitCode + ")"),
      );
    case "timeout":
      return add(
        span,
        el("span", "slow", "timed out after " + waited),
        leader + " (exit " + f.exitCode + ")",
      );
    case "skipped":
      return add(span, el("b", null, "skipped"), " (follower-mode skip)");
    case "already-done":
      return add(span, el("b", null, "already done"), leader);
    case "waiting":
      return add(
        span,
        el("b", null, "waiting " + waited),
        (item.attempt ? leader : " for a leader") +
          (f.startedAt ? " since " + clock(Date.parse(f.startedAt)) : ""),
      );
    case "gone":
      return add(
        span,
        el("span", "bad", "gone after waiting " + waited),
        leader +
          " (no heartbeat since " +
          clock(Date.parse(f.recordedAt)) +
          ": killed, or lost its connection)",
      );
    case "became-leader":
      return add(span, el("b", null, "waited " + waited), leader + ", then led");
    default:
      return add(
        span,
        el("b", null, f.outcome + " after " + waited),
        leader + (f.exitCode === null ? "" : " (exit " + f.exitCode + ")"),
      );
  }
}

/** An attempt's output tail, folded; a failure's is open unless the reader closed it. */
function renderOutput(a: PageAttempt): HTMLElement | null {
  const failed = a.status !== "succeeded" && a.status !== "running";
  if (!failed && !a.outputTail) return null;
  const key = String(a.id);
  const details = el("details", "output" + (failed ? " failure" : ""));
  details.setAttribute("data-attempt", key);
  details.open = failed ? !state.closedByUser.has(key) : state.openedByUser.has(key);
  const summary = el("summary");
  if (failed) {
    add(
      summary,
      "Attempt #" +
        a.id +
        " by " +
        a.app +
        " " +
        a.status +
        " with " +
        exitText(a) +
        " after " +
        duration(a.durationMs === null ? 0 : a.durationMs) +
        " · output tail",
    );
  } else {
    add(summary, "output of attempt #" + a.id + " by " + a.app);
  }
  const where = el("div", "where", a.app + " · pid " + a.pid + " on " + a.host + " · " + a.role);
  if (a.command) {
    const cmd = el("code", "cmd", "$ " + a.command);
    cmd.title = a.command;
    add(where, " · ", cmd);
  }
  const pre = el("pre", "tail", a.outputTail ? a.outputTail.replace(/\s+$/, "") : "(no output)");
  add(details, summary, where, pre);
  details.addEventListener("toggle", () => {
    const remember = (keys: Set<string>, yes: boolean) => (yes ? keys.add(key) : keys.delete(key));
    if (failed) remember(state.closedByUser, !details.open);
    else remember(state.openedByUser, details.open);
    if (details.open) pre.scrollTop = pre.scrollHeight;
  });
  return details;
}

function renderHead(release: PageRelease, t0: number, t1: number): HTMLElement {
  const rid = el("code", "rid", shortId(release.releaseId));
  rid.title = release.releaseId === null ? "no release id: processes took turns" : release.releaseId;
  const when = el("span", "when", day(t0) + " " + clock(t0) + " · " + duration(t1 - t0));
  return add(
    el("div", "head"),
    el("span", "badge " + release.status, release.status),
    rid,
    el("span", "task", release.task),
    el("span", "fill"),
    add(el("span", "leader"), "led by ", el("b", null, release.leader || "nobody")),
    when,
  );
}

/** One app's row: its bars on the release's time axis (t0, over `total` ms) and what they mean. */
function renderLane(lane: Lane, t0: number, total: number, now: number): HTMLElement {
  const row = el("div", "lane");
  row.setAttribute("data-app", lane.app);
  const track = el("div", "track");
  const what = el("div", "what");
  lane.items.forEach((item, index) => {
    const bar = el(
      "span",
      "bar " + (item.kind === "ran" ? "ran " + item.attempt.status : "wait " + item.follower.outcome),
    );
    bar.style.left = ((item.start - t0) / total) * 100 + "%";
    bar.style.width = ((item.end - item.start) / total) * 100 + "%";
    const who = item.kind === "ran" ? item.attempt : item.follower;
    bar.title =
      lane.app +
      " · pid " +
      who.pid +
      " on " +
      who.host +
      " · " +
      clock(item.start) +
      " – " +
      clock(item.end);
    track.appendChild(bar);
    if (index > 0) what.appendChild(document.createTextNode("; "));
    what.appendChild(item.kind === "ran" ? describeRan(item, now) : describeWait(item));
  });
  const app = el("div", "app", lane.app);
  app.title = lane.app;
  return add(row, app, track, what);
}

function renderRelease(release: PageRelease, now: number): HTMLElement {
  const lanes = lanesOf(release, now);
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const lane of lanes) {
    for (const item of lane.items) {
      t0 = Math.min(t0, item.start);
      t1 = Math.max(t1, item.end);
    }
  }
  const total = Math.max(t1 - t0, 1000);
  const section = el("section", "release " + release.status);
  section.setAttribute("data-release", release.releaseId === null ? "" : release.releaseId);
  section.setAttribute("data-status", release.status);
  section.appendChild(renderHead(release, t0, t1));
  for (const lane of lanes) section.appendChild(renderLane(lane, t0, total, now));
  const ticks = add(
    el("div", "ticks"),
    el("span", null, clock(t0)),
    el("span", null, "+" + duration(t1 - t0)),
  );
  section.appendChild(add(el("div", "axis"), el("span"), ticks, el("span")));
  for (const a of release.attempts) add(section, renderOutput(a));
  return section;
}

// ------------------------------------------------------------------------------------------- page

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
  lock.replaceChildren(
    el("span", "dot"),
    holder
      ? "lock held by pid " +
          holder.pid +
          (holder.applicationName ? " (" + holder.applicationName + ")" : "") +
          (holder.since ? " since " + clock(Date.parse(holder.since)) : "")
      : "lock free",
  );
}

function render(data: PageData): void {
  const now = Date.now();
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
        "No releases in the ledger (schema " +
          data.schema +
          ") yet. " +
          "They appear here as soon as release-orchestrator run records an attempt.",
      ),
    );
  } else {
    fragment.appendChild(renderOverview(data.releases));
    for (const r of data.releases) fragment.appendChild(renderRelease(r, now));
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
    // A running release changes with time even when the ledger does not.
    if (text !== state.lastText || data.releases.some((r) => r.status === "running")) render(data);
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
