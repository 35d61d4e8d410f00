// As root, in a checkout under a private folder (mode 0700, like root's home /root, where many
// containers and CI runners work): the embedded PostgreSQL runs as the OS user `postgres`, which cannot
// enter that folder, so it can reach neither the binaries in node_modules nor data in the checkout.
// `npm run release` and `npm run demo` still work there (and the harness's embedded fallback, through
// the same binaries helper); where nothing can work, one sentence names the cause and the fix.

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { binaryPackageName, canReach, reachableBinaries, type OsUser } from "../../demo/local-postgres.js";
import { ROOT, cleanEnv } from "../support/cli.js";
import { appEnv } from "./platform-support.js";

const asRoot = process.getuid?.() === 0;

function postgresUser(): OsUser {
  const id = (flag: string) =>
    Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim() || "NaN");
  return { uid: id("-u"), gid: id("-g") };
}

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/**
 * A checkout-like tree under a new 0700 folder: the built CLI, the migrations, package.json and the
 * Procfile copied; node_modules links to this checkout's packages, except the server binaries, copied
 * for real (a link would resolve to a path outside the private folder).
 */
function checkoutUnderPrivateFolder(): string {
  const parent = mkdtempSync(join(tmpdir(), "ro-private-"));
  made.push(parent);
  chmodSync(parent, 0o700);
  const checkout = join(parent, "checkout");
  mkdirSync(checkout);
  for (const entry of ["dist", "demo", "migrations", "package.json", "Procfile"])
    cpSync(join(ROOT, entry), join(checkout, entry), { recursive: true });
  const binaries = binaryPackageName();
  const modules = join(checkout, "node_modules");
  mkdirSync(join(modules, dirname(binaries)), { recursive: true });
  for (const entry of readdirSync(join(ROOT, "node_modules"))) {
    if (entry === dirname(binaries)) continue;
    symlinkSync(join(ROOT, "node_modules", entry), join(modules, entry));
  }
  cpSync(join(ROOT, "node_modules", binaries), join(modules, binaries), {
    recursive: true,
    verbatimSymlinks: true,
  });
  return checkout;
}

function node(checkout: string, script: string, env: Record<string, string | undefined> = {}) {
  return execa(process.execPath, [join(checkout, "demo/dist", script)], {
    cwd: checkout,
    env: cleanEnv(appEnv(env)),
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: 120_000,
  });
}

describe.runIf(asRoot)("as root, in a checkout under a private (0700) folder", () => {
  const checkout = asRoot ? checkoutUnderPrivateFolder() : "";
  const nativeBin = join(checkout, "node_modules", binaryPackageName(), "native", "bin");

  it("the postgres OS user cannot reach the binaries there (what these tests are about)", () => {
    expect(canReach(join(nativeBin, "initdb"), postgresUser())).toBe(false);
    expect(canReach(tmpdir(), postgresUser())).toBe(true);
  });

  it("npm run release: runs the migrations, then finds them done; its data is kept where postgres can reach it", async () => {
    const first = await node(checkout, "release.js");
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(/EACCES/);
    expect(first.stderr).toMatch(/\[release\] local: ran migrate: attempt #1 succeeded/);
    // The data: outside the private folder, linked from where it was asked for (.release-orchestrator/pgdata).
    const link = join(checkout, ".release-orchestrator", "pgdata");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    const data = readlinkSync(link);
    made.push(dirname(data));
    expect(first.stderr).toContain(`so the data is kept in ${data}, linked from ${link}`);
    expect(canReach(data, postgresUser())).toBe(true);
    expect(existsSync(join(data, "PG_VERSION"))).toBe(true);

    const second = await node(checkout, "release.js");
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/no DATABASE_URL: started an embedded PostgreSQL/);
    expect(second.stderr).toMatch(/migrate already succeeded for release fp-[0-9a-f]{16}/);
  });

  it("npm run demo: one leader, both apps succeed, exit 0", async () => {
    const demo = await node(checkout, "demo.js");
    expect(demo.exitCode, `${demo.stdout}\n${demo.stderr}`).toBe(0);
    expect(demo.stdout).not.toMatch(/EACCES/);
    expect(demo.stdout).toMatch(/database: embedded PostgreSQL \d+\.\d+/);
  });

  it("the harness's embedded fallback: the binaries helper hands it a copy postgres can run", () => {
    const privateOnes = {
      initdb: join(nativeBin, "initdb"),
      pg_ctl: join(nativeBin, "pg_ctl"),
      postgres: join(nativeBin, "postgres"),
    };
    const copy = reachableBinaries(privateOnes, postgresUser());
    expect(copy.initdb).not.toBe(privateOnes.initdb);
    expect(copy.initdb.startsWith(tmpdir())).toBe(true);
    const version = spawnSync(copy.postgres, ["--version"], {
      ...postgresUser(),
      cwd: "/",
      encoding: "utf8",
    });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/postgres \(PostgreSQL\) \d+/);
    // Binaries the user can reach are used where they are.
    expect(reachableBinaries(copy, postgresUser())).toEqual(copy);
  });

  it("with no folder postgres can reach (TMPDIR private too): one sentence naming cause and fix, exit 69", async () => {
    const privateTmp = join(dirname(checkout), "tmp");
    mkdirSync(privateTmp);
    const run = await node(checkout, "release.js", {
      TMPDIR: privateTmp,
      RELEASE_LOCAL_DIR: join(dirname(checkout), "elsewhere"),
    });
    expect(run.exitCode, run.stderr).toBe(69);
    expect(run.stderr).not.toMatch(/EACCES/);
    expect(run.stderr).toMatch(
      /\[release\] local: error: Running as root, the embedded PostgreSQL runs as the OS user postgres, which cannot reach .+; .*set DATABASE_URL\.$/,
    );
  });
});
