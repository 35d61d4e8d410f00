// Builds dist/bin/release-orchestrator: one Linux x64 executable (a Node single executable application)
// for images without Node, such as python:*-slim and ruby:*-slim. It is the CLI bundled into one CommonJS
// script, injected into a copy of the Node binary that runs this build. Needs glibc >= 2.28 where it runs.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
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

/** What the binary is made of: the CLI's sources, these build scripts, the dependencies, and this node. */
const INPUTS = [
  "src",
  "scripts/build-binary.mjs",
  "scripts/bundle-options.mjs",
  "package.json",
  "package-lock.json",
];

/** Why the binary must be (re)built, or undefined when it is newer than every input. */
function staleReason() {
  let built;
  try {
    built = statSync(BINARY).mtimeMs;
  } catch {
    return `${BINARY} does not exist`;
  }
  const visit = (path) => {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat === undefined) return undefined;
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) {
        const newer = visit(join(path, entry));
        if (newer !== undefined) return newer;
      }
      return undefined;
    }
    return stat.mtimeMs > built ? path : undefined;
  };
  for (const input of [...INPUTS, process.execPath]) {
    const newer = visit(input);
    if (newer !== undefined) return `${newer} changed after the last build`;
  }
  return undefined;
}

// A binary newer than everything it is made of is kept (npm test and the e2e tests' global setup ask
// for it every run); --force rebuilds it anyway.
if (!process.argv.includes("--force")) {
  const reason = staleReason();
  if (reason === undefined) {
    console.log(`${BINARY} is up to date (newer than ${INPUTS.join(", ")} and node); --force rebuilds it`);
    process.exit(0);
  }
  console.log(`building ${BINARY}: ${reason}`);
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
