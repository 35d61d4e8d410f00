// The exit-code table: the stable codes (a promise to every script and Job spec that reads them), the
// name -> code map derived from it, and the texts generated from it for `run --help` and the docs.

import { describe, expect, it } from "vitest";
import { EXIT_CODES, ExitCode, exitCodesHelp, exitCodesTable } from "../../src/core/exit-codes.js";

describe("the exit-code table", () => {
  it("keeps every stable code under its name", () => {
    expect(ExitCode).toEqual({
      ok: 0,
      usage: 64,
      databaseUnavailable: 69,
      internal: 70,
      timeout: 75,
      leaderFailed: 76,
      lockLost: 77,
      unsafeSetup: 78,
      sigint: 130,
      sigterm: 143,
    });
    expect(Object.isFrozen(ExitCode)).toBe(true);
  });

  it("has one row per code and per name, each with a meaning and a retry rule", () => {
    expect(new Set(EXIT_CODES.map((e) => e.code)).size).toBe(EXIT_CODES.length);
    expect(new Set(EXIT_CODES.map((e) => e.name)).size).toBe(EXIT_CODES.length);
    expect(EXIT_CODES.filter((e) => typeof e.code !== "number").map((e) => e.code)).toEqual(["N"]);
    for (const e of EXIT_CODES) {
      expect(e.meaning, String(e.code)).toMatch(/\S{3}/);
      expect(["yes", "no", "depends"], String(e.code)).toContain(e.retry);
      expect(e.retryWhy, String(e.code)).toMatch(/\S{3}/);
    }
  });

  it("says which codes an orchestrator should not retry: nothing ran, a bug, an unsafe setup", () => {
    const never = EXIT_CODES.filter((e) => e.retry === "no").map((e) => e.code);
    expect(never).toEqual([0, 64, 70, 78]);
    expect(EXIT_CODES.find((e) => e.code === "N")?.retry).toBe("depends");
  });

  it("words 77 and 78 for the lease, not for a lock or a pooler", () => {
    const meaning = (code: number) => EXIT_CODES.find((e) => e.code === code)?.meaning ?? "";
    expect(meaning(77)).toBe(
      "ownership was lost during the run (the lease could not be renewed, or the lock session ended); the command was stopped",
    );
    expect(meaning(78)).toContain("a read-only server, or a ledger schema that is not ours or is newer");
    expect(meaning(78)).not.toMatch(/pooler/);
  });

  it("generates the --help epilogue: every code, lines of at most 80 characters", () => {
    const help = exitCodesHelp();
    const lines = help.split("\n");
    expect(lines[0]).toBe("Exit codes:");
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
    for (const e of EXIT_CODES) expect(help).toMatch(new RegExp(`^  ${e.code} +\\S`, "m"));
    // Each meaning whole, once the wrapped lines are joined again.
    const joined = help.replace(/\n {11}/g, " ");
    for (const e of EXIT_CODES) expect(joined).toContain(e.meaning.replace(/`/g, ""));
  });

  it("generates the docs table: a row per code with its name, meaning and retry rule", () => {
    const rows = exitCodesTable().split("\n");
    expect(rows[0]).toBe("| code | name | meaning | retry? |");
    expect(rows).toHaveLength(EXIT_CODES.length + 2);
    expect(rows).toContain(
      "| 64 | `usage` | usage or configuration error; nothing was run | no: fix the configuration first |",
    );
  });
});
