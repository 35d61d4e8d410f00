// The test suite's own helpers: what a missing tool means (skip outside CI, fail in CI), and when
// dist/ counts as stale (then the e2e run builds it first).

import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { staleReason } from "../harness/fresh-build.js";
import { checkTool, inCI } from "../support/tools.js";

describe("checkTool", () => {
  it("a missing tool outside CI: no path, and one line naming the tool and its install command", () => {
    const tool = checkTool("chromium", { TEST_HIDE_TOOLS: "pgbouncer, chromium" });
    expect(tool.path).toBeUndefined();
    expect(tool.missing).toBe(
      "chromium is not installed (hidden by TEST_HIDE_TOOLS): Chromium (the status page is tested in a real headless browser) needs it; install it with: apt-get install chromium (.ci/run installs every tool the suite uses)",
    );
    expect(tool.missing).not.toContain("\n");
  });

  it("a missing tool with CI=true fails", () => {
    expect(() => checkTool("pgbouncer", { CI: "true", TEST_HIDE_TOOLS: "pgbouncer" })).toThrow(
      /^CI=true and pgbouncer is not installed .*install it with: apt-get install pgbouncer/,
    );
  });

  it("CI is on for true, 1 or yes, off otherwise", () => {
    expect([inCI({ CI: "true" }), inCI({ CI: "1" }), inCI({ CI: "YES" })]).toEqual([true, true, true]);
    expect([inCI({}), inCI({ CI: "false" }), inCI({ CI: "" })]).toEqual([false, false, false]);
  });
});

describe("staleReason (dist/ against the build's inputs)", () => {
  function tree(): string {
    const root = mkdtempSync(join(tmpdir(), "ro-fresh-"));
    mkdirSync(join(root, "src", "run"), { recursive: true });
    mkdirSync(join(root, "dist"));
    writeFileSync(join(root, "src", "run", "a.ts"), "");
    writeFileSync(join(root, "tsconfig.json"), "{}");
    writeFileSync(join(root, "dist", "cli.js"), "");
    return root;
  }
  const at = (root: string, file: string, seconds: number) => utimesSync(join(root, file), seconds, seconds);

  it("fresh when dist/cli.js is newer than every input", () => {
    const root = tree();
    at(root, "src/run/a.ts", 1_000);
    at(root, "tsconfig.json", 1_000);
    at(root, "dist/cli.js", 2_000);
    expect(staleReason(root)).toBeUndefined();
  });

  it("stale, naming the file, when a source changed after the build", () => {
    const root = tree();
    at(root, "tsconfig.json", 1_000);
    at(root, "dist/cli.js", 2_000);
    at(root, "src/run/a.ts", 3_000);
    expect(staleReason(root)).toBe("src/run/a.ts changed after the last build");
  });

  it("stale when package.json (the version the bundle prints) changed after the build", () => {
    const root = tree();
    writeFileSync(join(root, "package.json"), "{}");
    at(root, "src/run/a.ts", 1_000);
    at(root, "tsconfig.json", 1_000);
    at(root, "dist/cli.js", 2_000);
    at(root, "package.json", 3_000);
    expect(staleReason(root)).toBe("package.json changed after the last build");
  });

  it("stale when there is no build", () => {
    const root = mkdtempSync(join(tmpdir(), "ro-fresh-"));
    expect(staleReason(root)).toBe("dist/cli.js does not exist");
  });
});
