// The status page as served: its script and CSS are the committed build of page.ts and page.css (not
// stale), inlined once each into the HTML, and the CSP allows exactly those two by their hashes.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PAGE_SCRIPT, PAGE_STYLE } from "../../src/operator/page/generated-assets.js";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "../../src/operator/serve-page.js";

interface PageBuild {
  GENERATED: string;
  renderPageAssets: () => Promise<string>;
}

/** The generator (a build script, JavaScript without types: imported by URL, typed here). */
const pageBuild = () =>
  import(new URL("../../scripts/build-page.mjs", import.meta.url).href) as Promise<PageBuild>;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

/** The contents of every `<tag>` element of the page. */
const contents = (tag: string) =>
  [...STATUS_PAGE_HTML.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => m[1]);

describe("the status page's assets", () => {
  it("are the current build of page.ts and page.css (run npm run build, or node scripts/build-page.mjs)", async () => {
    const { GENERATED, renderPageAssets } = await pageBuild();
    // A boolean, not the two texts: a diff of two 20 KB one-line strings says less than the fix.
    const current = readFileSync(GENERATED, "utf8") === (await renderPageAssets());
    expect(current, `${GENERATED} is stale: run node scripts/build-page.mjs`).toBe(true);
    expect(PAGE_STYLE).toBe(
      readFileSync(new URL("../../src/operator/page/page.css", import.meta.url), "utf8"),
    );
    // An ES2019 IIFE: nothing of the module syntax or the types is left.
    expect(PAGE_SCRIPT).toMatch(/^"use strict";\n\(\(\) => \{\n/);
    expect(PAGE_SCRIPT).not.toMatch(/^\s*(import|export) /m);
  }, 30_000);

  it("are inlined once each, and the CSP allows exactly them by their sha256 hashes", () => {
    expect(contents("script")).toEqual([PAGE_SCRIPT]);
    expect(contents("style")).toEqual([PAGE_STYLE]);
    const policy = new Map(
      STATUS_PAGE_CSP.split("; ").map((directive): [string, string[]] => {
        const [name = "", ...values] = directive.split(" ");
        return [name, values];
      }),
    );
    expect(policy.get("script-src")).toEqual([sha256(PAGE_SCRIPT)]);
    expect(policy.get("style-src")).toEqual([sha256(PAGE_STYLE)]);
    expect(policy.get("default-src")).toEqual(["'none'"]);
    expect(policy.get("connect-src")).toEqual(["'self'"]);
  });

  it("loads nothing from elsewhere and never parses markup", () => {
    expect(STATUS_PAGE_HTML).not.toMatch(
      /<script[^>]*\ssrc=|<link[^>]*rel="stylesheet"|(src|href)="(https?:)?\/\//,
    );
    expect(PAGE_SCRIPT).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});
