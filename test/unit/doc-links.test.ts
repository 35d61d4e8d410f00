// Every relative link in README.md, CHANGELOG.md, docs/*.md and examples/**/README.md leads somewhere:
// the file exists, and a `#anchor` names a heading of that page (computed the way GitHub does).

import { existsSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.js";
import { anchorsOf, githubAnchor, linkedMarkdown, linksOf, readDoc } from "../support/docs.js";

/** The broken relative links of one Markdown file (path from the repository root), as readable lines. */
function brokenLinks(file: string, text = readDoc(file)): string[] {
  const broken: string[] = [];
  for (const { target, line } of linksOf(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
    const [path = "", anchor] = target.split("#", 2);
    const resolved = path === "" ? file : normalize(join(dirname(file), decodeURIComponent(path)));
    const where = `${file}:${line}: ${target}`;
    if (resolved.startsWith("..")) broken.push(`${where} (leaves the repository)`);
    else if (path !== "" && !existsSync(join(ROOT, resolved)))
      broken.push(`${where} (no such file: ${resolved})`);
    else if (anchor !== undefined) {
      if (!resolved.endsWith(".md") || (path !== "" && statSync(join(ROOT, resolved)).isDirectory()))
        broken.push(`${where} (an anchor into a file that is not Markdown)`);
      else if (!anchorsOf(path === "" ? text : readDoc(resolved)).has(anchor))
        broken.push(`${where} (no heading #${anchor} in ${resolved})`);
    }
  }
  return broken;
}

describe("links in the docs", () => {
  it("covers the README, the changelog, every docs page and the examples' READMEs", () => {
    const files = linkedMarkdown();
    expect(files).toEqual(
      expect.arrayContaining([
        "README.md",
        "CHANGELOG.md",
        "docs/how-it-works.md",
        "docs/reference.md",
        "examples/kubernetes/README.md",
      ]),
    );
    // The extractor finds links where there are some (the README links to every page).
    expect(linksOf(readDoc("README.md")).length).toBeGreaterThan(10);
  });

  it.each(linkedMarkdown())("%s: every relative link has its file and its heading", (file) => {
    expect(brokenLinks(file)).toEqual([]);
  });

  it("makes anchors as GitHub does", () => {
    expect(githubAnchor("Running it locally: `npm run release` and `npm run demo`")).toBe(
      "running-it-locally-npm-run-release-and-npm-run-demo",
    );
    expect(githubAnchor("Rails or Django on Heroku, without Node")).toBe(
      "rails-or-django-on-heroku-without-node",
    );
    expect(githubAnchor("0.2.0 (2026-12-04)")).toBe("020-2026-12-04");
    expect(githubAnchor("The `release_orchestrator` schema")).toBe("the-release_orchestrator-schema");
    expect(githubAnchor("**Bold** and [a link](x.md)")).toBe("bold-and-a-link");
    expect([...anchorsOf("# A\n\n```\n# not a heading\n```\n## A\n### b.")]).toEqual(["a", "a-1", "b"]);
  });

  it("fails on a missing file, a missing heading and an anchor into a non-Markdown file (so the check can fail)", () => {
    const text = [
      "[ok](how-it-works.md#ownership) [self](#top) [dir](../examples)",
      "[gone](no-such-page.md) [bad anchor](reference.md#no-such-heading) [yaml](../app.json#x)",
      "`[in code](nowhere.md)` and [web](https://example.com/nowhere)",
      "",
      "# Top",
    ].join("\n");
    expect(brokenLinks("docs/example.md", text)).toEqual([
      "docs/example.md:2: no-such-page.md (no such file: docs/no-such-page.md)",
      "docs/example.md:2: reference.md#no-such-heading (no heading #no-such-heading in docs/reference.md)",
      "docs/example.md:2: ../app.json#x (an anchor into a file that is not Markdown)",
    ]);
  });
});
