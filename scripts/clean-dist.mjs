// Empties dist/ before a build, so files of modules that were moved or removed never reach the package;
// the standalone binary (dist/bin, built by npm run build:binary) is left alone.
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

let entries = [];
try {
  entries = readdirSync("dist");
} catch {
  // no dist yet
}
for (const entry of entries) {
  if (entry !== "bin") rmSync(join("dist", entry), { recursive: true, force: true });
}
