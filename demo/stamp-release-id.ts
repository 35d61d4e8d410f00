// The build step's half of the release id (heroku-postbuild, a Docker build): writes the commit being
// built into `.release-id`, which `run` reads at release time. Heroku sets SOURCE_VERSION during the
// build only; stamped into the slug, the id travels with it to every app the slug is promoted to.

import { rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { ReleaseError } from "../src/core/errors.js";
import { COMMIT_ENV_VARS, releaseIdFromVariable, shortReleaseId } from "../src/core/release-id.js";
import { gitHead } from "../src/load/release-id.js";
import { isMain } from "./is-main.js";

export type Environment = Readonly<Record<string, string | undefined>>;

export interface StampResult {
  /** The id written, or undefined when none was found (and any stale file was removed). */
  id: string | undefined;
  /** Where it came from: "SOURCE_VERSION", "git rev-parse HEAD"... */
  source: string | undefined;
  path: string;
}

/**
 * Build-time sources, first found: an explicit RELEASE_ID, SOURCE_VERSION and the CI commit variables,
 * git. A variable that is set but malformed throws a UsageError naming it.
 */
export function findBuildReleaseId(
  env: Environment,
  readHead: () => string | undefined,
): { id: string; source: string } | undefined {
  for (const name of ["RELEASE_ID", "SOURCE_VERSION", ...COMMIT_ENV_VARS]) {
    const id = releaseIdFromVariable(name, env[name]);
    if (id !== undefined) return { id, source: name };
  }
  const head = readHead();
  return head === undefined ? undefined : { id: head, source: "git rev-parse HEAD" };
}

/** Writes the release id file (RELEASE_ID_FILE, default .release-id); with no id, removes a stale one. */
export function stampReleaseId(env: Environment, cwd: string): StampResult {
  const path = resolve(cwd, env.RELEASE_ID_FILE?.trim() || ".release-id");
  const found = findBuildReleaseId(env, () => gitHead(cwd));
  if (found === undefined) {
    rmSync(path, { force: true });
    return { id: undefined, source: undefined, path };
  }
  writeFileSync(path, `${found.id}\n`);
  return { ...found, path };
}

function main(): number {
  let result: StampResult;
  try {
    result = stampReleaseId(process.env, process.cwd());
  } catch (error) {
    if (!(error instanceof ReleaseError)) throw error;
    process.stderr.write(`[release] build: ${error.message}\n`);
    return error.exitCode;
  }
  if (result.id === undefined) {
    process.stderr.write(
      `[release] build: no release id to stamp (no SOURCE_VERSION, CI commit variable or git checkout); ${result.path} not written. Releases fall back to HEROKU_SLUG_COMMIT or RELEASE_ID at run time.\n`,
    );
  } else {
    process.stderr.write(
      `[release] build: stamped release id ${shortReleaseId(result.id)} (from ${result.source}) into ${result.path}\n`,
    );
  }
  return 0;
}

if (isMain(import.meta.url)) process.exitCode = main();
