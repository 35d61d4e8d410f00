// Bundles the CLI (dist/cli.js plus chunks loaded on demand): a few modules to load instead of hundreds
// makes the release phase start faster. The library (dist/index.js) stays unbundled, as tsc wrote it.
import { rm, readFile } from "node:fs/promises";
import { build } from "esbuild";

/**
 * pg asks at load time whether it runs in a Cloudflare Worker; on Node 20 (no `navigator`) the question
 * evaluates `typeof Response`, which loads Node's whole fetch implementation: ~15 ms of every start.
 * The bundle only ever runs on Node, so the answer is fixed here.
 */
const pgOnNode = {
  name: "pg-on-node",
  setup(build) {
    build.onLoad({ filter: /pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const patched = source.replace(
        "function isCloudflareRuntime() {",
        "function isCloudflareRuntime() {\n  return false;",
      );
      if (patched === source)
        throw new Error("pg-on-node: pg/lib/stream.js changed; update scripts/bundle.mjs");
      return { contents: patched, loader: "js" };
    });
  },
};

// Chunk names carry a content hash: remove those of earlier builds.
await rm("dist/chunks", { recursive: true, force: true });

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
  plugins: [pgOnNode],
  logLevel: "warning",
});
