// Finds the release id: the same on every app that ships the same code, first found wins.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { Config, Environment } from "../core/config.js";
import { UsageError } from "../core/errors.js";

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

/** What a release id may be, wherever it comes from: the one copy of the rule. */
export const RELEASE_ID_PATTERN = /^[\x21-\x7e]{1,200}$/;
export const RELEASE_ID_RULE = "1 to 200 printable characters without spaces";

/** A full commit hash: SHA-1 (40 hex digits) or SHA-256 (64), as `git rev-parse HEAD` prints it. */
const COMMIT_HASH = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i;

export function isReleaseId(text: string): boolean {
  return RELEASE_ID_PATTERN.test(text);
}

/** A short form for humans: the first 7 characters of a commit hash, the id itself otherwise. */
export function shortReleaseId(id: string): string {
  return COMMIT_HASH.test(id) ? id.slice(0, 7) : id;
}

/**
 * The value of a variable that names the release id, trimmed; undefined when unset or blank. A value
 * that is set but is no release id (10 000 characters, spaces, control characters) is an error that
 * names the variable: falling through to the next source would silently run unversioned.
 */
export function releaseIdFromVariable(name: string, value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  if (trimmed === undefined || trimmed === "") return undefined;
  if (isReleaseId(trimmed)) return trimmed;
  const length = [...trimmed].length;
  const why = length > 200 ? `it has ${length} characters` : "it contains spaces or non-printable characters";
  throw new UsageError(
    `${name} is set but is not a release id (${why}; a release id is ${RELEASE_ID_RULE}); fix or unset ${name}, or set RELEASE_ID.`,
  );
}

/** The commit checked out in `cwd` (`git rev-parse HEAD`); undefined outside a git checkout or without git. */
export function gitHead(cwd: string): string | undefined {
  try {
    const head = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    }).trim();
    return COMMIT_HASH.test(head) ? head : undefined;
  } catch {
    return undefined;
  }
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
  if (!isReleaseId(id)) {
    throw new UsageError(
      `The release id file ${path} must hold one id of ${RELEASE_ID_RULE}; rewrite it or delete it.`,
    );
  }
  return id;
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

/** Resolves the release id, first found; undefined means the run is unversioned. Rejects with UsageError. */
export function resolveReleaseId(
  config: Config,
  env: Environment,
  cwd: string,
): Promise<ReleaseId | undefined> {
  return Promise.resolve().then(() => findReleaseId(config, env, cwd));
}

/** The same, synchronously: throws UsageError for a source that is present but malformed. */
export function findReleaseId(config: Config, env: Environment, cwd: string): ReleaseId | undefined {
  if (config.releaseId !== undefined) return { id: config.releaseId, source: "--release-id / RELEASE_ID" };
  const filePath = resolve(cwd, config.releaseIdFile);
  const fromFile = readIdFile(filePath);
  if (fromFile !== undefined) return { id: fromFile, source: `file ${config.releaseIdFile}` };
  for (const name of COMMIT_ENV_VARS) {
    const id = releaseIdFromVariable(name, env[name]);
    if (id !== undefined) return { id, source: name };
  }
  const head = gitHead(cwd);
  if (head !== undefined) return { id: head, source: "git rev-parse HEAD" };
  if (config.fingerprint.length > 0) {
    return {
      id: fingerprintPaths(config.fingerprint, cwd),
      source: `fingerprint of ${config.fingerprint.join(", ")}`,
    };
  }
  return undefined;
}
