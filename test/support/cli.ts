// Runs the built CLI as a real OS process, with a clean environment, and reports what it did: either
// `node dist/cli.js` or the standalone binary (`npm run build:binary`) with no node on PATH.

import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { execa, type ResultPromise } from "execa";
import { inject } from "vitest";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/cli.js");
export const BINARY = join(ROOT, "dist/bin/release-orchestrator");
export const BUMP = join(ROOT, "test/fixtures/bump.mjs");

/** How the tool is started: `node dist/cli.js`, or the standalone binary on a PATH without node. */
export type CliKind = "node" | "binary";
export const CLI_KINDS: readonly CliKind[] = ["node", "binary"];

/**
 * The build a test starts when it names none: `node`, or the one in RELEASE_TEST_CLI (`npm run
 * test:binary` runs the fault and restart races again with `binary`).
 */
export function defaultCliKind(): CliKind {
  const kind = process.env.RELEASE_TEST_CLI ?? "node";
  if (kind !== "node" && kind !== "binary") throw new Error(`RELEASE_TEST_CLI=${kind}: use node or binary`);
  return kind;
}

/** The program and leading arguments that start the tool of this kind. */
export function cliCommand(kind: CliKind): { file: string; args: string[] } {
  if (kind === "node") return { file: process.execPath, args: [CLI] };
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: build it with npm run build:binary (npm test does).`);
  }
  // On musl (Alpine) the binary cannot start at all: say why instead of a confusing "not found".
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  if (header?.glibcVersionRuntime === undefined) {
    throw new Error("this machine has no glibc (musl/Alpine?): the standalone binary needs glibc >= 2.28.");
  }
  return { file: BINARY, args: [] };
}

/** Programs that would let a process reach Node: hidden from the binary's PATH. */
const NODE_PROGRAMS = new Set(["node", "nodejs", "npm", "npx", "corepack"]);
let noNodePath: string | undefined;

/**
 * A PATH with every program of this one except node (and npm, npx): one directory of links, since
 * node sits in /usr/bin beside sh and python. Throws if node is still reachable through it.
 */
export function pathWithoutNode(): string {
  if (noNodePath !== undefined) return noNodePath;
  const dir = join(mkdtempSync(join(tmpdir(), "ro-path-")), "bin");
  mkdirSync(dir);
  for (const from of (process.env.PATH ?? "").split(delimiter)) {
    if (from === "" || !existsSync(from)) continue;
    for (const name of readdirSync(from)) {
      if (NODE_PROGRAMS.has(name) || existsSync(join(dir, name))) continue;
      const target = join(from, name);
      try {
        accessSync(target, constants.X_OK);
        symlinkSync(target, join(dir, name));
      } catch {
        // not an executable, or a name taken by an earlier PATH entry
      }
    }
  }
  for (const name of NODE_PROGRAMS) {
    if (existsSync(join(dir, name))) throw new Error(`${name} is still on the PATH built without node`);
  }
  noNodePath = dir;
  return dir;
}

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
  /** Which build of the tool to start; default: defaultCliKind(). */
  cli?: CliKind;
}

export interface StartedCli {
  process: ResultPromise;
  done: Promise<CliRun>;
}

/** The program, leading arguments and clean environment that start the tool of this kind (no node on the binary's PATH). */
export function cliInvocation(
  kind: CliKind,
  extraEnv: Record<string, string | undefined> = {},
): { file: string; args: string[]; env: Record<string, string | undefined> } {
  const env = cleanEnv(extraEnv);
  if (kind === "binary") env.PATH = pathWithoutNode();
  return { ...cliCommand(kind), env };
}

export function startCli(args: string[], options: StartOptions = {}): StartedCli {
  const startedAt = Date.now();
  const { file, args: leading, env } = cliInvocation(options.cli ?? defaultCliKind(), options.env);
  const child = execa(file, [...leading, ...args], {
    env,
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

// The one sleep of the tests: Node's own.
export { setTimeout as sleep } from "node:timers/promises";
