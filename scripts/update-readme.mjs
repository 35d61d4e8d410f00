// Regenerates the README's option table from the built option list (npm run docs).
import { readFileSync, writeFileSync } from "node:fs";
import { withOptionsTable } from "../dist/options-doc.js";

const path = new URL("../README.md", import.meta.url);
writeFileSync(path, withOptionsTable(readFileSync(path, "utf8")));
console.log("README.md option table updated");
