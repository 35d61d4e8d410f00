// The release status page: one HTML document with its CSS and script inline (no external assets, so
// it works on a closed network). The script fetches api/releases every few seconds and builds the DOM
// with text nodes only (never innerHTML), so output tails and app names are always shown as text.

import { createHash } from "node:crypto";

/** How often the page fetches api/releases again. */
export const REFRESH_MS = 5000;

const STYLE = String.raw`
:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --card: #ffffff; --text: #1f2328; --muted: #59636e; --line: #d1d9e0; --track: #eef1f4;
  --ok: #1a7f37; --ok-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9; --run: #0969da; --run-bg: #ddf4ff;
  --warn: #9a6700; --warn-bg: #fff8c5; --wait: #8c959f; --pre-bg: #f6f8fa;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --card: #151b23; --text: #e6edf3; --muted: #9198a1; --line: #3d444d; --track: #212830;
    --ok: #3fb950; --ok-bg: #12261e; --fail: #f85149; --fail-bg: #25171c; --run: #4493f8; --run-bg: #121d2f;
    --warn: #d29922; --warn-bg: #272115; --wait: #656c76; --pre-bg: #0d1117;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.top {
  position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px;
  padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--line);
}
.top h1 { margin: 0; font-size: 18px; font-weight: 600; }
.top .sub { color: var(--muted); font-size: 13px; }
.top .meta { margin-left: auto; display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px; color: var(--muted); }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; background: var(--wait); }
.live.ok .dot { background: var(--ok); }
.live.down { color: var(--fail); }
.live.down .dot { background: var(--fail); }
.lock.held { color: var(--run); }
.lock.held .dot { background: var(--run); }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
.banner {
  margin: 0 0 14px; padding: 10px 14px; border: 1px solid var(--fail); border-radius: 6px;
  background: var(--fail-bg); color: var(--fail);
}
.overview { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin: 0 0 14px; font-size: 13px; }
.chip { padding: 3px 10px; border: 1px solid var(--line); border-radius: 999px; background: var(--card); color: var(--muted); }
.chip b { color: var(--text); font-weight: 600; }
.legend { margin-left: auto; display: flex; flex-wrap: wrap; gap: 14px; color: var(--muted); }
.legend .bar { position: static; display: inline-block; width: 18px; height: 10px; margin-right: 5px; vertical-align: -1px; }
.empty { padding: 40px; text-align: center; color: var(--muted); border: 1px dashed var(--line); border-radius: 8px; }
.release {
  margin: 0 0 12px; background: var(--card); border: 1px solid var(--line); border-left-width: 4px;
  border-radius: 8px; padding: 10px 16px 12px;
}
.release.succeeded { border-left-color: var(--ok); }
.release.failed, .release.lost, .release.abandoned { border-left-color: var(--fail); }
.release.running { border-left-color: var(--run); }
.release.interrupted { border-left-color: var(--warn); }
.head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 10px; margin-bottom: 8px; }
.badge {
  display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: var(--track); color: var(--muted); text-transform: lowercase;
}
.badge.succeeded { background: var(--ok-bg); color: var(--ok); }
.badge.failed, .badge.lost, .badge.abandoned { background: var(--fail-bg); color: var(--fail); }
.badge.running { background: var(--run-bg); color: var(--run); }
.badge.interrupted { background: var(--warn-bg); color: var(--warn); }
.rid { font-size: 14px; font-weight: 600; max-width: 28ch; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.task { color: var(--muted); }
.head .fill { flex: 1; }
.head .when { color: var(--muted); font-size: 13px; }
.head .leader b { font-weight: 600; }
.lane {
  display: grid; grid-template-columns: 9rem minmax(0, 1fr) 21rem; gap: 12px; align-items: center;
  min-height: 26px; font-size: 13px;
}
.lane .app { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.lane .what { color: var(--muted); }
.lane .what b { color: var(--text); font-weight: 600; }
.lane .what .bad { color: var(--fail); font-weight: 600; }
.lane .what .slow { color: var(--warn); font-weight: 600; }
.track { position: relative; height: 18px; background: var(--track); border-radius: 4px; }
.bar { position: absolute; top: 3px; bottom: 3px; min-width: 4px; border-radius: 3px; background: var(--wait); }
.bar.ran.succeeded { background: var(--ok); }
.bar.ran.failed, .bar.ran.lost, .bar.ran.abandoned { background: var(--fail); }
.bar.ran.interrupted { background: var(--warn); }
.bar.ran.running {
  background: repeating-linear-gradient(-45deg, var(--run) 0 6px, color-mix(in srgb, var(--run) 70%, white) 6px 12px);
  background-size: 17px 17px; animation: crawl 1s linear infinite;
}
@keyframes crawl { to { background-position: 17px 0; } }
.bar.wait {
  background: repeating-linear-gradient(-45deg, var(--wait) 0 3px, transparent 3px 6px);
  box-shadow: inset 0 0 0 1px var(--wait);
}
.bar.wait.failed, .bar.wait.timeout, .bar.wait.interrupted {
  background: repeating-linear-gradient(-45deg, var(--fail) 0 3px, transparent 3px 6px);
  box-shadow: inset 0 0 0 1px var(--fail);
}
.bar.wait.timeout { --fail: var(--warn); }
.bar.wait.gone { opacity: 0.45; box-shadow: inset 0 0 0 1px var(--fail); }
.bar.wait.waiting { animation: crawl 1s linear infinite; background-size: 8.5px 8.5px; }
.lane .what .blocked { display: block; font-weight: 500; }
.axis { display: grid; grid-template-columns: 9rem minmax(0, 1fr) 21rem; gap: 12px; font-size: 11px; color: var(--muted); }
.axis .ticks { display: flex; justify-content: space-between; }
details.output { margin-top: 6px; border: 1px solid transparent; border-radius: 6px; }
details.output[open], details.output.failure { border-color: var(--line); background: var(--pre-bg); }
details.output.failure { border-color: color-mix(in srgb, var(--fail) 40%, var(--line)); }
details.output summary { cursor: pointer; padding: 4px 10px; font-size: 12px; color: var(--muted); }
details.output.failure summary { padding: 6px 10px; font-size: 13px; font-weight: 600; color: var(--fail); }
details.output .where {
  padding: 0 12px 6px; font-size: 12px; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
}
details.output pre {
  margin: 0; padding: 8px 12px; max-height: 15em; overflow: auto; font-size: 12px; line-height: 1.45;
  white-space: pre-wrap; word-break: break-word; border-top: 1px solid var(--line);
}
@media (max-width: 760px) {
  .top, main { padding-left: 12px; padding-right: 12px; }
  .lane, .axis { grid-template-columns: 6rem minmax(0, 1fr); }
  .lane .what { grid-column: 1 / -1; margin: -4px 0 4px; }
  .axis > :last-child { display: none; }
}
`;

// Plain ES2019 (no build step for it) in a String.raw template: no backticks and no "${" inside.
const SCRIPT = String.raw`
(function () {
  "use strict";
  var REFRESH_MS = ${REFRESH_MS};
  var query = new URLSearchParams(location.search).get("limit");
  var api = "api/releases" + (query ? "?limit=" + encodeURIComponent(query) : "");
  var lastText = null;
  var lastUpdate = null;
  var timer = null;
  var closedByUser = {};
  var openedByUser = {};

  function byId(id) { return document.getElementById(id); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function day(ms) {
    var d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }
  function duration(ms) {
    ms = Math.max(0, ms);
    if (ms < 10000) return (ms / 1000).toFixed(1) + " s";
    var s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    s = s % 60;
    if (m < 60) return m + " min" + (s ? " " + s + " s" : "");
    return Math.floor(m / 60) + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
  }
  function shortId(id) {
    if (id === null) return "(unversioned)";
    return /^[0-9a-f]{40}$/.test(id) ? id.slice(0, 7) : id;
  }
  function exitText(a) {
    if (a.signal) return "signal " + a.signal;
    return a.exitCode === null ? "no exit code" : "exit code " + a.exitCode;
  }

  /** Every bar of a release, by app: the attempts it ran and how long the others waited. */
  function lanesOf(release, now) {
    var lanes = {};
    var order = [];
    function lane(app) {
      if (!lanes[app]) { lanes[app] = { app: app, items: [] }; order.push(app); }
      return lanes[app];
    }
    function follower(f, attempt) {
      var end = Date.parse(f.recordedAt);
      lane(f.app).items.push({ kind: "wait", start: end - f.waitedMs, end: end, f: f, attempt: attempt });
    }
    release.attempts.forEach(function (a) {
      var start = Date.parse(a.startedAt);
      var end = a.finishedAt ? Date.parse(a.finishedAt) : Math.max(now, start);
      lane(a.app).items.push({ kind: "ran", start: start, end: end, a: a });
      a.followers.forEach(function (f) { follower(f, a); });
    });
    release.others.forEach(function (f) { follower(f, null); });
    return order.sort().map(function (app) { return lanes[app]; });
  }

  function describe(item, now) {
    var span = el("span");
    if (item.kind === "ran") {
      var a = item.a;
      add(span, el("b", null, "led"), " \u00b7 ");
      if (a.status === "succeeded") add(span, "ran " + duration(item.end - item.start) + " \u00b7 exit 0");
      else if (a.status === "running") {
        add(span, "running for " + duration(now - item.start));
        if (a.blockedText) add(span, " \u00b7 ", el("span", "bad blocked", "blocked: " + a.blockedText));
      }
      else add(span, el("span", "bad", a.status + ", " + exitText(a)), " after " + duration(item.end - item.start));
      return span;
    }
    var f = item.f;
    var leader = item.attempt ? " for " + item.attempt.app : "";
    var waited = duration(f.waitedMs);
    switch (f.outcome) {
      case "succeeded":
        add(span, el("b", null, "waited " + waited), leader + " \u00b7 succeeded");
        break;
      case "failed":
        add(span, el("b", null, "waited " + waited), leader + " \u00b7 ", el("span", "bad", "leader failed (exit " + f.exitCode + ")"));
        break;
      case "timeout":
        add(span, el("span", "slow", "timed out after " + waited), leader + " (exit " + f.exitCode + ")");
        break;
      case "skipped":
        add(span, el("b", null, "skipped"), " (follower-mode skip)");
        break;
      case "already-done":
        add(span, el("b", null, "already done"), leader);
        break;
      case "waiting":
        add(span, el("b", null, "waiting " + waited), (item.attempt ? leader : " for a leader") +
          (f.startedAt ? " since " + clock(Date.parse(f.startedAt)) : ""));
        break;
      case "gone":
        add(span, el("span", "bad", "gone after waiting " + waited), leader +
          " (no heartbeat since " + clock(Date.parse(f.recordedAt)) + ": killed, or lost its connection)");
        break;
      case "became-leader":
        add(span, el("b", null, "waited " + waited), leader + ", then led");
        break;
      default:
        add(span, el("b", null, f.outcome + " after " + waited), leader + (f.exitCode === null ? "" : " (exit " + f.exitCode + ")"));
    }
    return span;
  }

  function renderOutput(a) {
    var failed = a.status !== "succeeded" && a.status !== "running";
    if (!failed && !a.outputTail) return null;
    var key = String(a.id);
    var details = el("details", "output" + (failed ? " failure" : ""));
    details.setAttribute("data-attempt", key);
    details.open = failed ? !closedByUser[key] : !!openedByUser[key];
    var summary = el("summary");
    if (failed) {
      add(summary, "Attempt #" + a.id + " by " + a.app + " " + a.status + " with " + exitText(a) + " after " +
        duration(a.durationMs === null ? 0 : a.durationMs) + " \u00b7 output tail");
    } else {
      add(summary, "output of attempt #" + a.id + " by " + a.app);
    }
    var where = el("div", "where", a.app + " \u00b7 pid " + a.pid + " on " + a.host + " \u00b7 " + a.role);
    if (a.command) {
      var cmd = el("code", "cmd", "$ " + a.command);
      cmd.title = a.command;
      add(where, " \u00b7 ", cmd);
    }
    var pre = el("pre", "tail", a.outputTail ? a.outputTail.replace(/\s+$/, "") : "(no output)");
    add(details, summary, where, pre);
    details.addEventListener("toggle", function () {
      if (failed) closedByUser[key] = !details.open; else openedByUser[key] = details.open;
      if (details.open) pre.scrollTop = pre.scrollHeight;
    });
    return details;
  }

  function renderRelease(release, now) {
    var lanes = lanesOf(release, now);
    var t0 = Infinity;
    var t1 = -Infinity;
    lanes.forEach(function (l) {
      l.items.forEach(function (i) { t0 = Math.min(t0, i.start); t1 = Math.max(t1, i.end); });
    });
    var total = Math.max(t1 - t0, 1000);
    var section = el("section", "release " + release.status);
    section.setAttribute("data-release", release.releaseId === null ? "" : release.releaseId);
    section.setAttribute("data-status", release.status);

    var head = el("div", "head");
    var rid = el("code", "rid", shortId(release.releaseId));
    rid.title = release.releaseId === null ? "no release id: processes took turns" : release.releaseId;
    var when = el("span", "when", day(t0) + " " + clock(t0) + " \u00b7 " + duration(t1 - t0));
    add(head, el("span", "badge " + release.status, release.status), rid, el("span", "task", release.task),
      el("span", "fill"), add(el("span", "leader"), "led by ", el("b", null, release.leader || "nobody")), when);
    section.appendChild(head);

    lanes.forEach(function (l) {
      var row = el("div", "lane");
      row.setAttribute("data-app", l.app);
      var track = el("div", "track");
      var what = el("div", "what");
      l.items.forEach(function (item, index) {
        var bar = el("span", "bar " + (item.kind === "ran" ? "ran " + item.a.status : "wait " + item.f.outcome));
        bar.style.left = ((item.start - t0) / total) * 100 + "%";
        bar.style.width = ((item.end - item.start) / total) * 100 + "%";
        var who = item.kind === "ran" ? item.a : item.f;
        bar.title = l.app + " \u00b7 pid " + who.pid + " on " + who.host + " \u00b7 " + clock(item.start) + " \u2013 " + clock(item.end);
        track.appendChild(bar);
        if (index > 0) what.appendChild(document.createTextNode("; "));
        what.appendChild(describe(item, now));
      });
      add(row, el("div", "app", l.app), track, what);
      row.firstChild.title = l.app;
      section.appendChild(row);
    });
    var axis = el("div", "axis");
    add(axis, el("span"), add(el("div", "ticks"), el("span", null, clock(t0)), el("span", null, "+" + duration(t1 - t0))), el("span"));
    section.appendChild(axis);

    release.attempts.forEach(function (a) { add(section, renderOutput(a)); });
    return section;
  }

  function renderOverview(releases) {
    var apps = {};
    releases.forEach(function (r) {
      r.attempts.forEach(function (a) {
        (apps[a.app] = apps[a.app] || { led: 0, waited: 0 }).led++;
        a.followers.forEach(function (f) { (apps[f.app] = apps[f.app] || { led: 0, waited: 0 }).waited++; });
      });
      r.others.forEach(function (f) { (apps[f.app] = apps[f.app] || { led: 0, waited: 0 }).waited++; });
    });
    var box = el("div", "overview");
    Object.keys(apps).sort().forEach(function (app) {
      var c = apps[app];
      add(box, add(el("span", "chip"), el("b", null, app), " led " + c.led + " \u00b7 waited " + c.waited));
    });
    var legend = el("span", "legend");
    [["ran ok", "bar ran succeeded"], ["failed", "bar ran failed"], ["running", "bar ran running"], ["waited", "bar wait"]]
      .forEach(function (entry) { add(legend, add(el("span"), el("span", entry[1]), entry[0])); });
    return add(box, legend);
  }

  function render(data) {
    var now = Date.now();
    var main = byId("releases");
    var scroll = {};
    Array.prototype.forEach.call(main.querySelectorAll("details[data-attempt] pre"), function (pre) {
      scroll[pre.parentNode.getAttribute("data-attempt")] = pre.scrollHeight - pre.scrollTop - pre.clientHeight;
    });
    var fragment = document.createDocumentFragment();
    if (data.releases.length === 0) {
      fragment.appendChild(el("p", "empty", "No releases in the ledger (schema " + data.schema + ") yet. " +
        "They appear here as soon as release-orchestrator run records an attempt."));
    } else {
      fragment.appendChild(renderOverview(data.releases));
      data.releases.forEach(function (r) { fragment.appendChild(renderRelease(r, now)); });
    }
    main.replaceChildren(fragment);
    // Output tails end with what matters: keep them scrolled to the bottom unless the reader scrolled up.
    Array.prototype.forEach.call(main.querySelectorAll("details[data-attempt] pre"), function (pre) {
      var fromBottom = scroll[pre.parentNode.getAttribute("data-attempt")] || 0;
      pre.scrollTop = pre.scrollHeight - pre.clientHeight - fromBottom;
    });
    var holder = data.lock.holder;
    var lock = byId("lock");
    lock.className = "lock" + (holder ? " held" : "");
    lock.replaceChildren(el("span", "dot"), holder
      ? "lock held by pid " + holder.pid + (holder.applicationName ? " (" + holder.applicationName + ")" : "") +
        (holder.since ? " since " + clock(Date.parse(holder.since)) : "")
      : "lock free");
  }

  function status(ok, message) {
    var live = byId("live");
    live.className = "live " + (ok ? "ok" : "down");
    var when = lastUpdate === null ? "" : (ok ? "updated " : "last update ") + clock(lastUpdate);
    live.replaceChildren(el("span", "dot"), ok ? "live \u00b7 " + when : "not updating \u00b7 retrying" + (when ? " \u00b7 " + when : ""));
    var banner = byId("banner");
    banner.hidden = ok;
    banner.textContent = ok ? "" : message;
  }

  function running(data) {
    return data.releases.some(function (r) { return r.status === "running"; });
  }

  function refresh() {
    clearTimeout(timer);
    fetch(api, { cache: "no-cache", headers: { accept: "application/json" } })
      .then(function (response) {
        return response.text().then(function (text) {
          if (response.status === 401) {
            throw new Error("The server no longer accepts this page's credentials (HTTP 401; RELEASE_SERVE_TOKEN may have changed): reload the page and sign in with the token as the password.");
          }
          if (!response.ok) {
            var message = "The status page could not read the ledger (HTTP " + response.status + ").";
            try { message = JSON.parse(text).error || message; } catch { /* not JSON: keep the status */ }
            throw new Error(message);
          }
          var data = JSON.parse(text);
          lastUpdate = Date.now();
          if (text !== lastText || running(data)) render(data);
          lastText = text;
          status(true, "");
        });
      })
      .catch(function (error) {
        status(false, error instanceof TypeError ? "The status page's server does not answer; retrying." : error.message);
      })
      .then(function () { timer = setTimeout(refresh, REFRESH_MS); });
  }

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  refresh();
})();
`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

/** Only this page's own inline style and script may run; it may fetch from its own origin only. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256(STYLE)}`,
  `script-src ${sha256(SCRIPT)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Releases · release-orchestrator</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header class="top">
  <div><h1>Releases</h1><div class="sub">release-orchestrator · who ran each release, who waited, what failed</div></div>
  <div class="meta"><span id="lock" class="lock"></span><span id="live" class="live"><span class="dot"></span>connecting…</span></div>
</header>
<main>
<div id="banner" class="banner" role="alert" hidden></div>
<div id="releases" aria-live="polite"><p class="empty">Reading the ledger…</p></div>
<noscript><p class="empty">This page needs JavaScript; GET api/releases has the same data as JSON.</p></noscript>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
