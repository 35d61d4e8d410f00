// The release id's rule, pure: what a release id may be, its short form, and which platform
// variables name one. Finding it (the file, the environment, git, a fingerprint) is load/release-id.ts.

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

/**
 * What a release id may be, wherever it comes from: the one copy of the rule. ASCII only: an id is
 * compared byte for byte across apps, builds and shells, and "é" has two Unicode spellings (NFC, NFD)
 * that look alike and differ; commit hashes, tags and build numbers are ASCII anyway.
 */
export const RELEASE_ID_PATTERN = /^[\x21-\x7e]{1,200}$/;
export const RELEASE_ID_RULE = "1 to 200 printable ASCII characters without spaces";

/** A full commit hash: SHA-1 (40 hex digits) or SHA-256 (64), as `git rev-parse HEAD` prints it. */
export const COMMIT_HASH = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i;

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
  const other = [...trimmed].find((c) => (c.codePointAt(0) ?? 0) > 0x7f);
  const why =
    length > 200
      ? `it has ${length} characters`
      : other !== undefined && /^\P{C}$/u.test(other)
        ? `it contains the non-ASCII character "${other}"`
        : "it contains spaces or non-printable characters";
  throw new UsageError(
    `${name} is set but is not a release id (${why}; a release id is ${RELEASE_ID_RULE}); fix or unset ${name}, or set RELEASE_ID.`,
  );
}

/** The variables that name a release id in the environment, in the order they are tried. */
export const RELEASE_ID_VARS = ["RELEASE_ID", ...COMMIT_ENV_VARS] as const;

/**
 * The warning of an unversioned run. A variable set but empty (`RELEASE_ID=`) counts as unset, as
 * a blank one does; the warning names it, since that is most often a variable that lost its value.
 */
export function unversionedWarning(env: Readonly<Record<string, string | undefined>>): string {
  const empty = RELEASE_ID_VARS.filter((name) => env[name] !== undefined && env[name].trim() === "");
  const named =
    empty.length === 0
      ? ""
      : ` ${empty.join(", ")} ${empty.length === 1 ? "is" : "are"} set but empty, which counts as unset.`;
  return `No release id found (RELEASE_ID, a .release-id file, HEROKU_SLUG_COMMIT, SOURCE_VERSION, CI commit variables, git, --fingerprint): this run is unversioned, so every process runs the command in turn.${named} Set RELEASE_ID or pass --fingerprint db/migrate to run it once per release.`;
}
