// The release id's edges (issue 23, item 5): the rule is printable ASCII (so "é1" is refused, with a
// sentence saying why), and a variable set but empty counts as unset and is named in the unversioned warning.

import { describe, expect, it } from "vitest";
import { parseConfig, type ConfigInput } from "../../src/core/config.js";
import { isReleaseId, releaseIdFromVariable, unversionedWarning } from "../../src/core/release-id.js";
import { findReleaseId } from "../../src/load/release-id.js";
import { scratchDir } from "../support/cli.js";

const input = (env: Record<string, string>, flags: Record<string, unknown> = {}): ConfigInput => ({
  flags,
  argvCommand: ["true"],
  env: { DATABASE_URL: "postgres://app:s3cret-pw-long-enough@db/app", ...env },
  dotenv: {},
});

describe("the release id rule: printable ASCII", () => {
  it.each(["8b1e0c5", "v1.2.3+build.7", "release/2026-12-04", "a".repeat(200)])("%s is a release id", (id) =>
    expect(isReleaseId(id)).toBe(true),
  );
  it.each(["é1", "1\u00a02", "a b", "", "a".repeat(201), "e\u0301"])("%j is not", (id) =>
    expect(isReleaseId(id)).toBe(false),
  );

  it("--release-id é1 is a usage error that says the rule is ASCII", () => {
    const result = parseConfig(input({}, { "release-id": "é1" }));
    expect(result.ok).toBe(false);
    if (!result.ok)
      expect(result.errors).toEqual([
        "release id must be 1 to 200 printable ASCII characters without spaces (from --release-id).",
      ]);
  });

  it("a variable holding a non-ASCII letter names it and the letter", () => {
    expect(() => releaseIdFromVariable("SOURCE_VERSION", "café")).toThrow(
      'SOURCE_VERSION is set but is not a release id (it contains the non-ASCII character "é"; a release id is 1 to 200 printable ASCII characters without spaces)',
    );
    expect(() => releaseIdFromVariable("GITHUB_SHA", "a b")).toThrow(/it contains spaces or non-printable/);
  });
});

describe("a release id variable set but empty", () => {
  it("counts as unset: RELEASE_ID= gives no release id, the next source is taken", () => {
    const result = parseConfig(input({ RELEASE_ID: "" }));
    if (!result.ok) throw new Error(result.errors.join(" | "));
    expect(result.config.releaseId).toBeUndefined();
    expect(findReleaseId(result.config, { RELEASE_ID: "" }, scratchDir())).toBeUndefined();
    expect(findReleaseId(result.config, { RELEASE_ID: "", SOURCE_VERSION: "s1" }, scratchDir())).toEqual({
      id: "s1",
      source: "SOURCE_VERSION",
    });
  });

  it("is named in the unversioned warning", () => {
    expect(unversionedWarning({ RELEASE_ID: "" })).toContain(
      "this run is unversioned, so every process runs the command in turn. RELEASE_ID is set but empty, which counts as unset. Set RELEASE_ID",
    );
    expect(unversionedWarning({ RELEASE_ID: " ", SOURCE_VERSION: "" })).toContain(
      "RELEASE_ID, SOURCE_VERSION are set but empty, which counts as unset.",
    );
    expect(unversionedWarning({})).not.toContain("set but empty");
    expect(unversionedWarning({ OTHER: "" })).not.toContain("set but empty");
  });
});
