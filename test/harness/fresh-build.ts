// vitest globalSetup: the e2e tests run the built CLI (dist/) and the standalone binary (dist/bin/), so
// a build older than its sources would test yesterday's code. `npm test` builds first; `npx vitest run`
// right after an edit gets a build here (one line says why), and a build that fails stops the run with
// its output. The binary's build (scripts/build-binary.mjs) keeps a binary newer than its inputs.

import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
/**
 * What the build reads besides src/ (scripts/bundle.mjs writes dist/cli.js, the build's last output);
 * package.json holds the version the bundle prints.
 */
const INPUTS = [
  "src",
  "scripts/build-page.mjs",
  "scripts/bundle.mjs",
  "scripts/bundle-options.mjs",
  "package.json",
  "tsconfig.json",
  "tsconfig.build.json",
];
const LAST_OUTPUT = "dist/cli.js";

function mtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The most recently modified input file, with its mtime. */
function newestInput(root: string): { path: string; mtimeMs: number } {
  let newest = { path: "", mtimeMs: 0 };
  const visit = (path: string): void => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else if (stat.mtimeMs > newest.mtimeMs) {
      newest = { path, mtimeMs: stat.mtimeMs };
    }
  };
  for (const input of INPUTS) if (mtimeMs(join(root, input)) !== undefined) visit(join(root, input));
  return newest;
}

/** Why dist/ is stale, or undefined when it is newer than every input. */
export function staleReason(root = ROOT): string | undefined {
  const built = mtimeMs(join(root, LAST_OUTPUT));
  if (built === undefined) return `${LAST_OUTPUT} does not exist`;
  const newest = newestInput(root);
  return newest.mtimeMs > built ? `${relative(root, newest.path)} changed after the last build` : undefined;
}

export default function setup(): void {
  buildDist();
  buildBinary();
}

function buildDist(): void {
  const reason = staleReason();
  if (reason === undefined) return;
  process.stderr.write(`[fresh-build] dist/ is stale (${reason}): running npm run build first.\n`);
  const build = spawnSync("npm", ["run", "build", "--silent"], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (build.status !== 0) {
    throw new Error(
      `dist/ is stale (${reason}) and npm run build failed (${build.error?.message ?? `exit code ${build.status ?? build.signal}`}); fix the build, the tests run the built CLI:\n${build.stdout}${build.stderr}`,
    );
  }
}

/** The standalone binary (Linux x64 only), rebuilt by its script when older than its inputs. */
function buildBinary(): void {
  if (process.platform !== "linux" || process.arch !== "x64") return;
  const build = spawnSync(process.execPath, ["scripts/build-binary.mjs"], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (build.status !== 0) {
    throw new Error(
      `the standalone binary is stale and npm run build:binary failed (${build.error?.message ?? `exit code ${build.status ?? build.signal}`}); fix the build, the tests run the binary too:\n${build.stdout}${build.stderr}`,
    );
  }
  const built = /^building .*$/m.exec(build.stdout);
  if (built !== null) process.stderr.write(`[fresh-build] ${built[0]}: done.\n`);
}
