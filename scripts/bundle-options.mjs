// What both bundles of the CLI share: the ESM one npm ships (dist/cli.js) and the CommonJS one the
// standalone binary runs (scripts/build-binary.mjs).
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

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
        throw new Error("pg-on-node: pg/lib/stream.js changed; update scripts/bundle-options.mjs");
      return { contents: patched, loader: "js" };
    });
  },
};

/** esbuild options of the CLI bundle, whatever its format. */
export const cliBundleOptions = {
  entryPoints: ["src/cli.ts"],
  bundle: true,
  platform: "node",
  target: "node20",
  // pg's optional native binding is never used; leave it out.
  external: ["pg-native"],
  // The version is part of the code: the binary carries no package.json to read it from.
  define: { RELEASE_ORCHESTRATOR_VERSION: JSON.stringify(version) },
  plugins: [pgOnNode],
  logLevel: "warning",
};
