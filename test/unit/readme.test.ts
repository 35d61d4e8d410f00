// The README's generated parts match the code: the option table, and the exit-code table.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ExitCode } from "../../src/core/exit-codes.js";
import { withOptionsTable } from "../../src/core/options-doc.js";
import { OPTIONS } from "../../src/core/options.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README", () => {
  it("has the option table generated from the option list (run npm run docs after changing options)", () => {
    expect(readme).toBe(withOptionsTable(readme));
    for (const spec of OPTIONS) for (const env of spec.env) expect(readme).toContain(`\`${env}\``);
  });

  it("documents every exit code", () => {
    for (const [name, code] of Object.entries(ExitCode)) {
      expect(readme, `exit code ${name}`).toMatch(new RegExp(`^\\| ${code} +\\|`, "m"));
    }
  });
});
