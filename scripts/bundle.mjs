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
