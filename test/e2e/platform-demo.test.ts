// `npm run demo` (demo/dist/demo.js, which the npm script runs after building): a simulated
// pipeline promotion whose timeline shows exactly one leader, and whose exit code says so.

import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { ROOT, cleanEnv } from "../support/cli.js";

const DEMO = join(ROOT, "demo/dist/demo.js");

async function demo(args: string[] = []) {
  const result = await execa(process.execPath, [DEMO, ...args], {
    cwd: ROOT,
    env: cleanEnv({}),
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: 90_000,
  });
  const timeline = result.stdout.slice(result.stdout.indexOf("Timeline of release"));
  const rows = timeline.split("\n").filter((line) => /^ {2}s-/.test(line));
  return { ...result, timeline, rows };
}

/** A postgres URL with a password in it: `postgres://user:secret@`. */
const URL_WITH_PASSWORD = /postgres(?:ql)?:\/\/[^\s:@/]+:[^\s@/]+@/;

describe("npm run demo", () => {
  it("s-app and s-admin release at once: one leads, the other waits for it, both succeed, exit 0", async () => {
    const run = await demo();
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/heroku-postbuild stamped release id [0-9a-f]{7} \(from SOURCE_VERSION\)/);
    expect(run.stdout).toMatch(/Procfile: release: node dist\/cli\.js run -- npm run migrate/);
    // Each app's release phase with Heroku's environment: its dyno name prefixes its lines.
    expect(run.stdout).toMatch(/ s-app\[release\.\d{4}\] +\[release\] s-app: /);
    expect(run.stdout).toMatch(/ s-admin\[release\.\d{4}\] +\[release\] s-admin: /);
    expect(run.stdout.match(/Migrating files:/g)).toHaveLength(1);

    expect(run.rows).toHaveLength(2);
    expect(
      run.rows.filter((row) => /\bLEADER +ran migrate \(attempt #1\): succeeded/.test(row)),
    ).toHaveLength(1);
    expect(
      run.rows.filter((row) =>
        /\bfollower +waited \d+\.\d s for s-(app|admin)'s attempt #1, which succeeded; exit 0$/.test(row),
      ),
    ).toHaveLength(1);
    expect(run.rows.every((row) => / v\d+ +release\.\d{4} /.test(row))).toBe(true);
    expect(run.timeline).toMatch(
      /Result: exactly one app ran migrate \(s-(app|admin)\); the other 1 waited for it; all 2 apps succeeded\./,
    );
    expect(`${run.stdout}${run.stderr}`).not.toMatch(URL_WITH_PASSWORD);
  });

  it("--apps 2: four apps, still exactly one leader", async () => {
    const run = await demo(["--apps", "2"]);
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.rows.map((row) => row.trim().split(/\s+/)[0]).sort()).toEqual([
      "s-admin",
      "s-app",
      "s-worker-1",
      "s-worker-2",
    ]);
    expect(run.rows.filter((row) => /\bLEADER\b/.test(row))).toHaveLength(1);
    expect(run.rows.filter((row) => /\bfollower\b.*; exit 0$/.test(row))).toHaveLength(3);
    expect(run.stdout.match(/Migrating files:/g)).toHaveLength(1);
  });

  it("refuses a bad argument with exit 64 and starts nothing", async () => {
    const run = await demo(["--apps", "many"]);
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toMatch(/--apps takes a number of extra apps/);
    expect(run.stdout).toBe("");
  });
});
