// Runs the built CLI as a real OS process, with a clean environment, and reports what it did.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa, type ResultPromise } from "execa";
import { inject } from "vitest";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/cli.js");
export const BUMP = join(ROOT, "test/fixtures/bump.mjs");

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Date.now() when the process was started and when it exited, as seen by the test. */
  startedAt: number;
  exitedAt: number;
}

/** A working directory outside any git checkout, so `git rev-parse HEAD` cannot give a release id. */
export function scratchDir(): string {
  return mkdtempSync(join(tmpdir(), "ro-test-"));
}

/** Only what a process needs: no CI commit variables, no DATABASE_URL unless given. */
export function cleanEnv(extra: Record<string, string | undefined>): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: process.env.HOME, LANG: "C.UTF-8", ...extra };
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

export interface StartedCli {
  process: ResultPromise;
  done: Promise<CliRun>;
}

export function startCli(args: string[], options: StartOptions = {}): StartedCli {
  const startedAt = Date.now();
  const child = execa(process.execPath, [CLI, ...args], {
    env: cleanEnv(options.env ?? {}),
    extendEnv: false,
    cwd: options.cwd ?? scratchDir(),
    reject: false,
    stdin: "ignore",
    timeout: options.timeoutMs ?? 60_000,
    all: false,
    stripFinalNewline: false,
  });
  const done = child.then((result) => {
    const run = {
      exitCode: result.exitCode ?? -1,
      stdout: String(result.stdout ?? ""),
      stderr: String(result.stderr ?? ""),
      startedAt,
      exitedAt: Date.now(),
    };
    // Every run of the CLI in every test is scanned: the database password must never be printed.
    const password = testPassword();
    if (password !== undefined && `${run.stdout}${run.stderr}`.includes(password)) {
      throw new Error(
        `the database password appeared in the output of: release-orchestrator ${args.join(" ")}`,
      );
    }
    return run;
  });
  return { process: child, done };
}

export function runCli(args: string[], options: StartOptions = {}): Promise<CliRun> {
  return startCli(args, options).done;
}

/** The test server's password (from the e2e global setup), if any. */
function testPassword(): string | undefined {
  try {
    const password = inject("pgPassword");
    return password.length >= 4 ? password : undefined;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
