// One release on the status page: a card with its head, a lane per app (the bars of the attempts it
// ran and of the waits of the others, on the release's time axis) and the attempts' output tails.

import type { PageAttempt, PageFollower, PageRelease } from "./api.js";
import { add, clock, day, el } from "./dom.js";

/** Failure outputs (open by default) the reader closed, and other outputs they opened, by attempt id. */
const closedByUser = new Set<string>();
const openedByUser = new Set<string>();

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

function exitText(a: PageAttempt): string {
  if (a.signal) return "signal " + a.signal;
  return a.exitCode === null ? "no exit code" : "exit code " + a.exitCode;
}

/**
 * Every bar of a release, by app: the attempts it ran and how long the others waited. A running
 * attempt's bar ends where the release's span does: at the server's read, which its texts are as of.
 */
function lanesOf(release: PageRelease): Lane[] {
  const now = Date.parse(release.span.to);
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

function describeRan(item: RanItem): HTMLElement {
  const a = item.attempt;
  const span = add(el("span"), el("b", null, "led"), " · ");
  if (a.status === "succeeded") add(span, "ran " + a.durationText + " · exit 0");
  else if (a.status === "running") {
    add(span, "running for " + a.durationText);
    if (a.blockedText) add(span, " · ", el("span", "bad blocked", "blocked: " + a.blockedText));
  } else {
    add(span, el("span", "bad", a.status + ", " + exitText(a)), " after " + a.durationText);
  }
  if (a.triesText.length > 0) {
    const n = a.triesText.length;
    const tries = el("span", "slow tries", `lock guard: ${n} ${n === 1 ? "try" : "tries"} cancelled`);
    tries.title = a.triesText.join("\n");
    add(span, " · ", tries);
  }
  return span;
}

function describeWait(item: WaitItem): HTMLElement {
  const span = el("span");
  const f = item.follower;
  const leader = item.attempt ? " for " + item.attempt.app : "";
  const waited = f.waitedText;
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
  details.open = failed ? !closedByUser.has(key) : openedByUser.has(key);
  const summary = el("summary");
  if (failed) {
    add(
      summary,
      `Attempt #${a.id} by ${a.app} ${a.status} with ${exitText(a)} after ${a.durationText} · output tail`,
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
    if (failed) remember(closedByUser, !details.open);
    else remember(openedByUser, details.open);
    if (details.open) pre.scrollTop = pre.scrollHeight;
  });
  return details;
}

function renderHead(release: PageRelease, t0: number): HTMLElement {
  const rid = el("code", "rid", release.shortReleaseId ?? "(unversioned)");
  rid.title = release.releaseId === null ? "no release id: processes took turns" : release.releaseId;
  const when = el("span", "when", `${day(t0)} ${clock(t0)} · ${release.span.text}`);
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
function renderLane(lane: Lane, t0: number, total: number): HTMLElement {
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
    bar.title = `${lane.app} · pid ${who.pid} on ${who.host} · ${clock(item.start)} – ${clock(item.end)}`;
    track.appendChild(bar);
    if (index > 0) what.appendChild(document.createTextNode("; "));
    what.appendChild(item.kind === "ran" ? describeRan(item) : describeWait(item));
  });
  const app = el("div", "app", lane.app);
  app.title = lane.app;
  return add(row, app, track, what);
}

export function renderRelease(release: PageRelease): HTMLElement {
  const lanes = lanesOf(release);
  const t0 = Date.parse(release.span.from);
  const total = Math.max(Date.parse(release.span.to) - t0, 1000);
  const section = el("section", "release " + release.status);
  section.setAttribute("data-release", release.releaseId === null ? "" : release.releaseId);
  section.setAttribute("data-status", release.status);
  section.appendChild(renderHead(release, t0));
  for (const lane of lanes) section.appendChild(renderLane(lane, t0, total));
  const ticks = add(
    el("div", "ticks"),
    el("span", null, clock(t0)),
    el("span", null, "+" + release.span.text),
  );
  section.appendChild(add(el("div", "axis"), el("span"), ticks, el("span")));
  for (const a of release.attempts) add(section, renderOutput(a));
  return section;
}
