// The release status page: one HTML document with its CSS and script inline (no external assets, so
// it works on a closed network). The script (page/page.ts) fetches api/releases every few seconds and
// builds the DOM with text nodes only (never innerHTML), so output tails and app names are always shown
// as text; it and the CSS (page/page.css) reach this module through page/generated-assets.ts, which
// scripts/build-page.mjs writes (npm run build).

import { createHash } from "node:crypto";
import { PAGE_SCRIPT as SCRIPT, PAGE_STYLE as STYLE } from "./page/generated-assets.js";

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
