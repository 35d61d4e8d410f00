// `run --help` ends with the exit codes generated from the one table (src/core/exit-codes.ts), as
// the docs' tables are (test/unit/docs.test.ts compares those).

import { describe, expect, it } from "vitest";
import { exitCodesHelp } from "../../src/core/exit-codes.js";
import { runCli } from "../support/cli.js";

describe("run --help", () => {
  it("ends with the exit-code table, 70 included", async () => {
    const run = await runCli(["run", "--help"], { cli: "node" });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.trimEnd().endsWith(exitCodesHelp())).toBe(true);
    expect(run.stdout).toMatch(/^ {2}70 +an unexpected failure/m);
  });
});
