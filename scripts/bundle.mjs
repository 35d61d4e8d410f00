// Bundles the CLI (dist/cli.js plus chunks loaded on demand): a few modules to load instead of hundreds
// makes the release phase start faster. The library (dist/index.js) stays unbundled, as tsc wrote it.
import { build } from "esbuild";

await build({
  entryPoints: ["src/cli.ts"],
  outdir: "dist",
  // Dynamic imports become chunks loaded on demand: a follower never loads execa, --help never loads pg.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  // pg's optional native binding is never used; leave it out.
  external: ["pg-native"],
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: "warning",
});
