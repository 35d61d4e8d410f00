// The one list of --json events (src/core/events.ts): every event name the source emits is in it, every
// name in it is emitted somewhere, and docs/operator-guide.md lists exactly these (generated).

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EVENTS, eventsTable } from "../../src/core/events.js";
import { createReporter } from "../../src/core/reporter.js";
import { ROOT } from "../support/cli.js";
import { readDoc } from "../support/docs.js";

/** Every .ts file under src/ but the list itself and the status page's browser code, with its text. */
function sources(dir = "src"): { path: string; text: string }[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return path === join("src", "operator", "page") ? [] : sources(path);
    if (!entry.name.endsWith(".ts") || path === join("src", "core", "events.ts")) return [];
    return [{ path, text: readFileSync(join(ROOT, path), "utf8") }];
  });
}

/** Event names written as literals: `fields(ctx, "name"`, `fields(ctx, x ? "a" : "b"` and `event: "name",`. */
function emittedLiterals(): Map<string, string> {
  const found = new Map<string, string>();
  const patterns = [
    /fields\((?:this\.)?ctx, (?:\w+ \? )?"([a-z-]+)"(?: : "([a-z-]+)")?/g,
    /\bevent: "([a-z-]+)"(?=\s*[,}\n])/g,
  ];
  for (const { path, text } of sources())
    for (const pattern of patterns)
      for (const match of text.matchAll(pattern))
        for (const name of match.slice(1)) if (name !== undefined) found.set(name, path);
  return found;
}

describe("the --json events", () => {
  it("every event literal in src/ is in the list", () => {
    const found = emittedLiterals();
    const unlisted = [...found].filter(([name]) => !(name in EVENTS)).map(([n, p]) => `${n} (${p})`);
    expect(unlisted).toEqual([]);
    // The scan itself finds the events issue 23 found missing from the docs.
    for (const name of ["weak-password", "blocked", "unblocked", "lock-cancelled", "lock-retry"])
      expect(found.has(name), name).toBe(true);
    for (const name of ["lock-guard-off", "lock-cancel-ignored", "takeover", "serving"])
      expect(found.has(name), name).toBe(true);
  });

  it("every listed event is named somewhere in src/ (no entry that nothing emits)", () => {
    const all = sources()
      .map((s) => s.text)
      .join("\n");
    const unused = Object.keys(EVENTS).filter((name) => !all.includes(`"${name}"`));
    expect(unused).toEqual([]);
  });

  it("a message without a name of its own is named by its level, which is listed too", () => {
    const lines: string[] = [];
    const reporter = createReporter({ json: true, verbose: true, write: (t) => lines.push(t) });
    reporter.info("i");
    reporter.warn("w");
    reporter.error("e");
    reporter.debug("d");
    reporter.progress("p");
    const names = lines.map((line) => (JSON.parse(line) as { event: string }).event);
    expect(names).toEqual(["message", "warning", "error", "debug", "waiting"]);
    for (const name of names) expect(name in EVENTS).toBe(true);
  });

  it("docs/operator-guide.md lists exactly these events, generated from the list", () => {
    const guide = readDoc("docs/operator-guide.md");
    expect(guide).toContain(eventsTable());
    const listed = [...guide.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual(Object.keys(EVENTS).sort());
  });
});
