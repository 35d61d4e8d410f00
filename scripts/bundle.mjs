// Bundles the CLI (dist/cli.js plus chunks loaded on demand): a few modules to load instead of hundreds
// makes the release phase start faster. The library (dist/index.js) stays unbundled, as tsc wrote it.
import { rm } from "node:fs/promises";
import { build } from "esbuild";
import { cliBundleOptions } from "./bundle-options.mjs";

// Chunk names carry a content hash: remove those of earlier builds.
await rm("dist/chunks", { recursive: true, force: true });

await build({
  ...cliBundleOptions,
  outdir: "dist",
  // Dynamic imports become chunks loaded on demand: a follower never loads execa, --help never loads pg.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  format: "esm",
  sourcemap: true,
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
});

// The demo Heroku app (demo/: npm run demo, npm run release, heroku-postbuild) is not part of the
// package: its scripts are built beside it, into demo/dist/, with their npm dependencies left as imports.
await rm("demo/dist", { recursive: true, force: true });
await build({
  entryPoints: ["demo/demo.ts", "demo/release.ts", "demo/stamp-release-id.ts"],
  outdir: "demo/dist",
  bundle: true,
  packages: "external",
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
});
