// The standalone binary (npm run build:binary) behaves as `node dist/cli.js`: the same stdout, stderr
// and exit code for every command's help and for bad input, with no node on PATH; and it asks no more of
// the machine than docs/where-it-runs.md says (glibc 2.28).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BINARY, ROOT, cliCommand, runCli } from "../support/cli.js";

const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

const UNREACHABLE = "postgres://app:s3cret-pw@127.0.0.1:1/app";
const CASES: { args: string[]; env?: Record<string, string> }[] = [
  { args: ["--version"] },
  { args: ["--help"] },
  ...["run", "status", "history", "doctor", "serve"].map((command) => ({ args: [command, "--help"] })),
  { args: [] },
  { args: ["deploy"] },
  { args: ["run", "--role", "boss", "--", "true"], env: { DATABASE_URL: UNREACHABLE } },
  { args: ["run", "--wait-timeout", "soon", "--", "true"], env: { DATABASE_URL: UNREACHABLE } },
  { args: ["run"], env: { DATABASE_URL: UNREACHABLE } },
  { args: ["run", "--", "true"] },
  { args: ["run", "--", "true"], env: { DATABASE_URL: "not a url" } },
  {
    args: ["run", "--release-id", "r1", "--connect-timeout", "1s", "--", "true"],
    env: { DATABASE_URL: UNREACHABLE },
  },
  { args: ["status", "--json"] },
  { args: ["history", "--limit", "none"], env: { DATABASE_URL: UNREACHABLE } },
];

/** Output with what differs from run to run (timestamps, durations and their unit) masked. */
const stable = (text: string) =>
  text.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "<time>").replace(/\d+(\.\d+)? (ms|s|m)\b/g, "<duration>");

describe("the standalone binary", () => {
  it("prints the package's version", async () => {
    const run = await runCli(["--version"], { cli: "binary" });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(`${version}\n`);
  });

  it.each(CASES)("answers `$args` exactly as node dist/cli.js does", async ({ args, env }) => {
    const [viaNode, viaBinary] = await Promise.all([
      runCli(args, { cli: "node", env }),
      runCli(args, { cli: "binary", env }),
    ]);
    expect({
      exitCode: viaBinary.exitCode,
      stdout: viaBinary.stdout,
      stderr: stable(viaBinary.stderr),
    }).toEqual({
      exitCode: viaNode.exitCode,
      stdout: viaNode.stdout,
      stderr: stable(viaNode.stderr),
    });
    expect(`${viaNode.stdout}${viaNode.stderr}`).not.toBe("");
  });

  it("needs glibc 2.28 at most, as docs/where-it-runs.md says", () => {
    cliCommand("binary");
    const versions = [
      ...readFileSync(BINARY)
        .toString("latin1")
        .matchAll(/GLIBC_2\.(\d+)(?!\.)/g),
    ].map((m) => Number(m[1]));
    expect(versions.length).toBeGreaterThan(0);
    expect(Math.max(...versions)).toBeLessThanOrEqual(28);
  });
});
