// The docs' generated parts match the code (the option table, the exit-code tables), and the README is a
// front page whose commands are the ones the tests run (from docs/where-it-runs.md, docs/recipes.md and the
// Kubernetes example).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ExitCode, exitCodesTable } from "../../src/core/exit-codes.js";
import { generatedBlocks, withGenerated, withGeneratedTables } from "../../src/core/options-doc.js";
import { OPTIONS } from "../../src/core/options.js";
import { ROOT } from "../support/cli.js";
import { docPages, proseLines, readDoc, recipes } from "../support/docs.js";

const readme = readDoc("README.md");
const reference = readDoc("docs/reference.md");

/** The body of the first fenced block of this language in a Markdown text. */
function fenced(text: string, language: string): string {
  const match = new RegExp("^```" + language + "\\n([\\s\\S]*?)^```", "m").exec(text);
  if (match?.[1] === undefined) throw new Error(`no \`\`\`${language} block`);
  return match[1];
}

describe("docs/reference.md", () => {
  it("has the option table generated from the option list (run npm run docs after changing options)", () => {
    expect(generatedBlocks(reference)).toContain("options");
    expect(reference).toBe(withGenerated(reference, "options"));
    for (const spec of OPTIONS) for (const env of spec.env) expect(reference).toContain(`\`${env}\``);
  });
});

describe("docs/reference.md, Library", () => {
  it("lists the library's exports (src/index.ts), no more, no fewer", async () => {
    const exported = Object.keys(await import("../../src/index.js")).sort();
    const section = reference.slice(reference.indexOf("## Library"));
    const listed = [...section.matchAll(/^- ((?:`\w+`(?:, )?)+):/gm)].flatMap((m) =>
      (m[1] ?? "").split(", ").map((name) => name.replace(/`/g, "")),
    );
    expect(listed.sort()).toEqual(exported);
  });
});

describe("the exit-code tables", () => {
  it.each(["README.md", "docs/reference.md"])(
    "%s has the table generated from src/core/exit-codes.ts, with the retry column",
    (file) => {
      const text = readDoc(file);
      expect(generatedBlocks(text)).toContain("exit-codes");
      expect(text).toContain(exitCodesTable());
      expect(text).toContain("| code | name | meaning | retry? |");
    },
  );

  it.each(["README.md", "docs/reference.md"])("%s documents every exit code", (file) => {
    const text = readDoc(file);
    for (const [name, code] of Object.entries(ExitCode)) {
      expect(text, `exit code ${name}`).toMatch(new RegExp(`^\\| ${code} +\\|`, "m"));
    }
  });
});

describe("every docs page", () => {
  it.each(docPages())("%s: its generated tables are up to date (npm run docs)", (file) => {
    const text = readDoc(file);
    expect(text).toBe(withGeneratedTables(text));
  });

  it.each(docPages())("%s: no paragraph, list item or table row of over 1,000 characters", (file) => {
    const long = proseLines(readDoc(file))
      .filter(({ line }) => line.length > 1000)
      .map(({ number, line }) => `${file}:${number}: ${line.length} characters: ${line.slice(0, 60)}...`);
    expect(long).toEqual([]);
  });
});

describe("README.md, the front page", () => {
  it("is at most 200 lines: one sentence, the two commands, how it works, the exit codes, links", () => {
    expect(readme.split("\n").length).toBeLessThanOrEqual(200);
    expect(fenced(readme, "sh").trim().split("\n")).toEqual(["npm install && npm run demo", "npm test"]);
    for (const page of docPages().filter((page) => page.startsWith("docs/")))
      expect(readme, page).toContain(`](${page})`);
  });

  it("shows the Procfile lines that the tests run: the buildpack's (docs/where-it-runs.md) and the node-pg-migrate recipe", () => {
    const lines = fenced(readme, "procfile").trim().split("\n");
    // test/e2e/platform-heroku-buildpack.test.ts runs the first `release: bin/...` line of docs/where-it-runs.md
    const buildpackLine = /^release: bin\/release-orchestrator run .+$/m.exec(
      readDoc("docs/where-it-runs.md"),
    )?.[0];
    // test/e2e/platform-recipes.test.ts runs the recipe table's node-pg-migrate command
    expect(lines).toEqual([buildpackLine, `release: ${recipes().get("node-pg-migrate")}`]);
  });

  it("shows the init container of examples/kubernetes/python/deployment.yaml (which the Kubernetes test runs)", () => {
    const shown = (parse(fenced(readme, "yaml")) as { initContainers: unknown[] }).initContainers[0];
    const manifest = parse(
      readFileSync(join(ROOT, "examples/kubernetes/python/deployment.yaml"), "utf8"),
    ) as { spec: { template: { spec: { initContainers: Record<string, unknown>[] } } } };
    const migrate = manifest.spec.template.spec.initContainers[0] ?? {};
    expect(shown).toEqual({ name: migrate.name, image: migrate.image, command: migrate.command });
  });
});
