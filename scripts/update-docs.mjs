// Regenerates the docs' generated tables (options, exit codes) from the built code (npm run docs):
// every block between its markers in README.md and docs/*.md.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { generatedBlocks, withGeneratedTables } from "../dist/core/options-doc.js";

const files = [
  "README.md",
  ...readdirSync(new URL("../docs", import.meta.url))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
for (const file of files) {
  const path = new URL(`../${file}`, import.meta.url);
  const text = readFileSync(path, "utf8");
  const blocks = generatedBlocks(text);
  if (blocks.length === 0) continue;
  writeFileSync(path, withGeneratedTables(text));
  console.log(`${file}: ${blocks.join(", ")} regenerated`);
}
