// Builds dist/bin/release-orchestrator: one Linux x64 executable (a Node single executable application)
// for images without Node, such as python:*-slim and ruby:*-slim. It is the CLI bundled into one CommonJS
// script, injected into a copy of the Node binary that runs this build. Needs glibc >= 2.28 where it runs.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { inject } from "postject";
import { cliBundleOptions } from "./bundle-options.mjs";

const OUT_DIR = "dist/bin";
const BINARY = join(OUT_DIR, "release-orchestrator");
// Intermediate files, kept beside the binary for inspection; the npm package ships neither.
const WORK_DIR = join(OUT_DIR, "sea");
// The fuse Node looks for to know a blob was injected (from Node's single-executable-applications docs).
const SENTINEL_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

if (process.platform !== "linux" || process.arch !== "x64") {
  throw new Error(`build:binary makes a Linux x64 binary; this is ${process.platform} ${process.arch}.`);
}

rmSync(OUT_DIR, { recursive: true, force: true });
mkdirSync(WORK_DIR, { recursive: true });

// One CommonJS file, no chunks: a single executable application runs exactly one script, and its
// `require` only knows Node's built-in modules.
const script = join(WORK_DIR, "cli.cjs");
await build({
  ...cliBundleOptions,
  outfile: script,
  format: "cjs",
  splitting: false,
  define: {
    ...cliBundleOptions.define,
    // yargs locates itself with import.meta.url; in a CommonJS bundle that is this file.
    "import.meta.url": "__releaseOrchestratorUrl",
  },
  banner: { js: 'var __releaseOrchestratorUrl = require("node:url").pathToFileURL(__filename).href;' },
});

const blob = join(WORK_DIR, "sea-prep.blob");
const seaConfig = join(WORK_DIR, "sea-config.json");
writeFileSync(
  seaConfig,
  JSON.stringify({
    main: script,
    output: blob,
    disableExperimentalSEAWarning: true,
    // V8's compiled code travels in the blob: a faster start, the point of a release-phase tool.
    useCodeCache: true,
  }),
);
execFileSync(process.execPath, ["--experimental-sea-config", seaConfig], { stdio: "inherit" });

copyFileSync(process.execPath, BINARY);
chmodSync(BINARY, 0o755);
// Never strip the result: a stripped single executable application crashes at start.
await inject(BINARY, "NODE_SEA_BLOB", readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });

const version = execFileSync(BINARY, ["--version"], {
  encoding: "utf8",
  env: { PATH: "/usr/bin:/bin" },
}).trim();
console.log(`${BINARY}: release-orchestrator ${version}, node ${process.version}`);
