// Finds the release id in the build, the environment, git or a fingerprint: the same on every app
// that ships the same code, first found wins. The rule for what a release id is: core/release-id.ts.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { Config, Environment } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import {
  COMMIT_ENV_VARS,
  COMMIT_HASH,
  RELEASE_ID_RULE,
  isReleaseId,
  releaseIdFromVariable,
  type ReleaseId,
} from "../core/release-id.js";

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
