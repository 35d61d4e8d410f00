// Finds the release id: the same on every app that ships the same code, first found wins.

import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { Config, Environment } from "./config.js";
import { UsageError } from "./errors.js";

/** Commit variables of platforms and CI services, in the order they are tried after the release id file. */
export const COMMIT_ENV_VARS = [
  "HEROKU_SLUG_COMMIT",
  "HEROKU_BUILD_COMMIT",
  "SOURCE_VERSION",
  "GITHUB_SHA",
  "CI_COMMIT_SHA",
  "CIRCLE_SHA1",
  "BUILDKITE_COMMIT",
  "TRAVIS_COMMIT",
  "BITBUCKET_COMMIT",
  "DRONE_COMMIT_SHA",
  "VERCEL_GIT_COMMIT_SHA",
  "RENDER_GIT_COMMIT",
  "RAILWAY_GIT_COMMIT_SHA",
  "COMMIT_REF",
  "GIT_COMMIT",
] as const;

export interface ReleaseId {
  id: string;
  /** Where it came from, for messages: "--release-id", "SOURCE_VERSION", "git rev-parse HEAD"... */
  source: string;
}

const VALID_ID = /^[\x21-\x7e]{1,200}$/;

/** A short form for humans: the first 7 characters of a commit hash, the id itself otherwise. */
export function shortReleaseId(id: string): string {
  return /^[0-9a-f]{40}$/i.test(id) ? id.slice(0, 7) : id;
}

function readIdFile(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UsageError(`Cannot read the release id file ${path}: ${(error as Error).message}.`);
  }
  const id = text.trim();
  if (id === "") return undefined;
  if (!VALID_ID.test(id)) {
    throw new UsageError(
      `The release id file ${path} must hold one id of 1 to 200 printable characters without spaces; rewrite it or delete it.`,
    );
  }
  return id;
}

async function gitHead(cwd: string): Promise<string | undefined> {
  const { execa } = await import("execa");
  const result = await execa("git", ["rev-parse", "HEAD"], {
    cwd,
    reject: false,
    timeout: 5000,
    stdin: "ignore",
  });
  if (result.exitCode !== 0 || typeof result.stdout !== "string") return undefined;
  const head = result.stdout.trim();
  return /^[0-9a-f]{40,64}$/.test(head) ? head : undefined;
}

/** A content hash of files and directories (names and bytes, in a stable order). */
export function fingerprintPaths(paths: readonly string[], cwd: string): string {
  const hash = createHash("sha256");
  const visit = (absolute: string) => {
    const stat = statSync(absolute);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(absolute).sort()) visit(join(absolute, entry));
    } else if (stat.isFile()) {
      hash.update(`${relative(cwd, absolute)}\0`);
      hash.update(readFileSync(absolute));
      hash.update("\0");
    }
  };
  for (const path of [...paths].sort()) {
    const absolute = resolve(cwd, path);
    try {
      statSync(absolute);
    } catch {
      throw new UsageError(`The fingerprint path ${path} does not exist in ${cwd}; fix --fingerprint.`);
    }
    visit(absolute);
  }
  return `fp-${hash.digest("hex").slice(0, 16)}`;
}

/** Resolves the release id, first found; undefined means the run is unversioned. */
export async function resolveReleaseId(
  config: Config,
  env: Environment,
  cwd: string,
): Promise<ReleaseId | undefined> {
  if (config.releaseId !== undefined) return { id: config.releaseId, source: "--release-id / RELEASE_ID" };
  const filePath = resolve(cwd, config.releaseIdFile);
  const fromFile = readIdFile(filePath);
  if (fromFile !== undefined) return { id: fromFile, source: `file ${config.releaseIdFile}` };
  for (const name of COMMIT_ENV_VARS) {
    const value = env[name]?.trim();
    if (value !== undefined && VALID_ID.test(value)) return { id: value, source: name };
  }
  const head = await gitHead(cwd);
  if (head !== undefined) return { id: head, source: "git rev-parse HEAD" };
  if (config.fingerprint.length > 0) {
    return {
      id: fingerprintPaths(config.fingerprint, cwd),
      source: `fingerprint of ${config.fingerprint.join(", ")}`,
    };
  }
  return undefined;
}
