// What the bench runs and where: the built CLI (built first if missing or older than src/), a
// byte-identical snapshot of it so that a concurrent rebuild cannot change it mid-run, a clean
// environment for every child, and a description of the machine for RESULTS.md.

import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { cpus, freemem, loadavg, release, tmpdir, totalmem, type } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** Builds dist/cli.js with `npm run build` when it is missing or older than a file in src/. */
export function ensureBuilt(log: (line: string) => void): void {
  const cli = path.join(REPO, "dist", "cli.js");
  const stale = !existsSync(cli) || statSync(cli).mtimeMs < newestMtime(path.join(REPO, "src"));
  if (!stale) return;
  const missing = !existsSync(cli);
  log(missing ? "no dist/cli.js: building" : "dist/cli.js is older than src/: building");
  try {
    execFileSync("npm", ["run", "build", "--silent"], { cwd: REPO, stdio: ["ignore", "inherit", "inherit"] });
  } catch (error) {
    // src/ may be mid-edit; an older build is still worth measuring, and the header says which commit.
    if (missing) throw error;
    log("the build failed; measuring the existing dist/cli.js");
  }
}

export interface Workspace {
  /** A private directory for fifos, lock files and the processes' working directory. */
  dir: string;
  /** The snapshot of dist/cli.js (in a copy of dist/) every orchestrator process runs. */
  cli: string;
  /** The snapshot of the standalone binary (npm run build:binary), when one was built. */
  binary?: string;
}

/**
 * Copies dist/ (and package.json, which the CLI reads for --version) into a temporary directory:
 * the same bytes, so the same timings, but safe from a rebuild by someone else during the run.
 */
export function makeWorkspace(): Workspace {
  const dir = mkdtempSync(path.join(tmpdir(), "ro-bench-"));
  mkdirSync(path.join(dir, "work"));
  // The whole of dist/: the CLI may load chunks of its bundle on demand.
  cpSync(path.join(REPO, "dist"), path.join(dir, "dist"), { recursive: true });
  copyFileSync(path.join(REPO, "package.json"), path.join(dir, "package.json"));
  // Should a later bundle leave a package external, it resolves as it would in the repository.
  symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"), "dir");
  const binary = path.join(dir, "dist", "bin", "release-orchestrator");
  return { dir, cli: path.join(dir, "dist", "cli.js"), ...(existsSync(binary) ? { binary } : {}) };
}

/**
 * The environment of every child: only what a release phase would have, plus what the scenario sets.
 * Nothing from the developer's shell leaks in: not RELEASE_*, RUN_MIGRATIONS, PG* or CI commit
 * variables, and not NODE_OPTIONS or NODE_EXTRA_CA_CERTS (the latter adds ~35 ms to every Node start
 * on the machine this bench was written on, which would hide what the CLI itself costs).
 */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ["PATH", "HOME", "LANG", "TZ", "TMPDIR"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "?";
  }
}

export interface MachineInfo {
  date: string;
  lines: string[];
}

export function describeMachine(postgresVersion: string): MachineInfo {
  const cpu = cpus();
  const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GB`;
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  const npmVersion =
    /npm\/(\S+)/.exec(process.env.npm_config_user_agent ?? "")?.[1] ?? commandOutput("npm", ["-v"]);
  const nm = path.join(REPO, "node_modules");
  return {
    date: new Date().toISOString(),
    lines: [
      `Machine: ${cpu.length} x ${cpu[0]?.model.trim() ?? "?"}, ${gb(totalmem())} RAM (${gb(freemem())} free at start), ${type()} ${release()}; load average at start ${load}`,
      `Versions: release-orchestrator ${packageVersion(REPO)} (dist/cli.js, git ${commandOutput("git", ["-C", REPO, "rev-parse", "--short", "HEAD"])}${commandOutput("git", ["-C", REPO, "status", "--porcelain", "src"]) === "" ? "" : " + uncommitted src changes"}), Node ${process.version}, npm ${npmVersion}, PostgreSQL ${postgresVersion}, pg ${packageVersion(path.join(nm, "pg"))}, node-pg-migrate ${packageVersion(path.join(REPO, "bench", "peers", "node_modules", "node-pg-migrate"))} (side by side), ${commandOutput("flock", ["--version"])}`,
    ],
  };
}
