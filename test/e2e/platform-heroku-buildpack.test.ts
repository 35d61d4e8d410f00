// Heroku without Node (buildpack/): bin/compile run against a temporary build directory with the
// binary served from a file:// URL, as Heroku runs it against the slug being built; then the
// Procfile release line of docs/where-it-runs.md run from that slug by two apps at once, with no node on PATH.

import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { BINARY, ROOT, cleanEnv, cliCommand, pathWithoutNode, scratchDir } from "../support/cli.js";
import { appEnv } from "./platform-support.js";

const COMPILE = join(ROOT, "buildpack/bin/compile");
const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
const COMMIT = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f";

/** bin/compile BUILD_DIR CACHE_DIR ENV_DIR, with the given config vars in ENV_DIR. */
async function compile(config: Record<string, string>, extraPath: string[] = []) {
  const build = scratchDir();
  const envDir = scratchDir();
  for (const [name, value] of Object.entries(config)) writeFileSync(join(envDir, name), value);
  const result = await execa(COMPILE, [build, scratchDir(), envDir], {
    env: { ...cleanEnv({ SOURCE_VERSION: COMMIT }), PATH: [...extraPath, pathWithoutNode()].join(":") },
    extendEnv: false,
    reject: false,
    all: true,
    timeout: 60_000,
  });
  return { build, exitCode: result.exitCode, all: String(result.all) };
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** The asset of a GitHub release, as a file:// URL. */
function asset(): string {
  cliCommand("binary"); // says how to build it when it is missing
  return pathToFileURL(BINARY).href;
}

const procfileLine = /^release: (bin\/release-orchestrator run .+)$/m.exec(
  readFileSync(join(ROOT, "docs/where-it-runs.md"), "utf8"),
)?.[1];

describe("buildpack/bin/compile", () => {
  const db = useTestDatabase("platform-buildpack");

  it("is executable, as are bin/detect", () => {
    for (const file of ["compile", "detect"]) {
      expect(statSync(join(ROOT, "buildpack/bin", file)).mode & 0o111).toBe(0o111);
    }
  });

  it("installs the binary as bin/release-orchestrator and stamps SOURCE_VERSION into .release-id", async () => {
    const result = await compile({
      RELEASE_ORCHESTRATOR_URL: asset(),
      RELEASE_ORCHESTRATOR_SHA256: sha256(BINARY),
    });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toContain(`bin/release-orchestrator ${version}`);
    const installed = join(result.build, "bin/release-orchestrator");
    expect(statSync(installed).mode & 0o111).toBe(0o111);
    expect(sha256(installed)).toBe(sha256(BINARY));
    expect(readdirSync(join(result.build, "bin"))).toEqual(["release-orchestrator"]);
    expect(readFileSync(join(result.build, ".release-id"), "utf8")).toBe(`${COMMIT}\n`);
  });

  it("refuses a download whose checksum differs, and installs nothing", async () => {
    const result = await compile({
      RELEASE_ORCHESTRATOR_URL: asset(),
      RELEASE_ORCHESTRATOR_SHA256: "0".repeat(64),
    });
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(
      /the download's SHA-256 is [0-9a-f]{64}, not RELEASE_ORCHESTRATOR_SHA256 .*nothing was installed/,
    );
    expect(readdirSync(join(result.build, "bin"))).toEqual([]);
  });

  it("says so when the URL cannot be fetched", async () => {
    const result = await compile({
      RELEASE_ORCHESTRATOR_URL: pathToFileURL(join(scratchDir(), "missing")).href,
    });
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/could not download file:\/\/.*missing; check RELEASE_ORCHESTRATOR_URL/);
    expect(existsSync(join(result.build, "bin/release-orchestrator"))).toBe(false);
  });

  it("on a musl (Alpine) build image, stops with a sentence instead of installing a binary that cannot start", async () => {
    const fakes = scratchDir();
    writeFileSync(join(fakes, "ldd"), "#!/bin/sh\necho 'musl libc (x86_64)'\necho 'Version 1.2.5'\nexit 1\n");
    chmodSync(join(fakes, "ldd"), 0o755);
    const result = await compile({ RELEASE_ORCHESTRATOR_URL: asset() }, [fakes]);
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/uses musl libc .*needs glibc >= 2\.28\. Use the npm package/);
    expect(existsSync(join(result.build, "bin"))).toBe(false);
  });

  it("on a stack with glibc older than 2.28, stops with a sentence", async () => {
    const fakes = scratchDir();
    writeFileSync(join(fakes, "ldd"), "#!/bin/sh\necho 'ldd (Ubuntu GLIBC 2.27-3ubuntu1.6) 2.27'\n");
    chmodSync(join(fakes, "ldd"), 0o755);
    const result = await compile({ RELEASE_ORCHESTRATOR_URL: asset() }, [fakes]);
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/this stack has glibc 2\.27; the standalone binary needs glibc >= 2\.28/);
    expect(existsSync(join(result.build, "bin"))).toBe(false);
  });

  it("the Procfile release line of docs/where-it-runs.md, run from the slug by two apps at once without node: migrates once", async () => {
    expect(procfileLine).toBe("bin/release-orchestrator run -- bundle exec rake db:migrate");
    const slug = await compile({ RELEASE_ORCHESTRATOR_URL: asset() });
    expect(slug.exitCode, slug.all).toBe(0);
    // `bundle exec rake db:migrate` of a Rails app that is not here: a real program on PATH that migrates.
    const fakes = scratchDir();
    mkdirSync(fakes, { recursive: true });
    writeFileSync(
      join(fakes, "bundle"),
      `#!/bin/sh
[ "$*" = "exec rake db:migrate" ] || { echo "unexpected: bundle $*" >&2; exit 2; }
exec psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -c "CREATE TABLE IF NOT EXISTS migrated (app text)" -c "SELECT pg_sleep(1)" -c "INSERT INTO migrated VALUES ('$RELEASE_APP_NAME')"
`,
    );
    chmodSync(join(fakes, "bundle"), 0o755);
    const [program, ...args] = (procfileLine ?? "").split(" ");
    const runs = await Promise.all(
      ["s-app", "s-admin"].map((app) =>
        execa(join(slug.build, program!), args, {
          cwd: slug.build,
          env: {
            ...cleanEnv(appEnv({ DATABASE_URL: db().url, RELEASE_APP_NAME: app })),
            PATH: `${fakes}:${pathWithoutNode()}`,
          },
          extendEnv: false,
          reject: false,
          all: true,
          stdin: "ignore",
          timeout: 60_000,
        }),
      ),
    );
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => String(r.all)).join("\n---\n"),
    ).toEqual([0, 0]);
    expect(await db().query("SELECT app FROM migrated")).toHaveLength(1);
    const attempts = await db().query<{ release_id: string }>(
      "SELECT release_id FROM release_orchestrator.attempts",
    );
    expect(attempts).toEqual([{ release_id: COMMIT }]);
  });
});
