// The Procfile, run for real: a real Procfile runner (foreman, Debian's ruby-foreman) starts the
// `release` process type of this repository for two apps at once on one database, as two Heroku apps'
// release phases would run; the migrations run once and both exit 0.

import { execFileSync } from "node:child_process";
import { accessSync, constants, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { stampReleaseId } from "../../demo/stamp-release-id.js";
import { ROOT, cleanEnv, scratchDir } from "../support/cli.js";
import { MIGRATIONS, appEnv, readLedger, readMigrated } from "./platform-support.js";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function commandOutput(file: string, args: string[]): string | undefined {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

/** foreman on PATH, or where `gem install --user-install foreman` puts it. */
function findForeman(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && executable(join(dir, "foreman"))) return join(dir, "foreman");
  }
  const gemDir = commandOutput("ruby", ["-e", "print Gem.user_dir"]);
  if (gemDir !== undefined && executable(join(gemDir, "bin", "foreman")))
    return join(gemDir, "bin", "foreman");
  return undefined;
}

/** Installs foreman if it is missing and this machine lets us (root with apt-get, or gem); else says how. */
function ensureForeman(): string {
  const found = findForeman();
  if (found !== undefined) return found;
  const attempts: string[] = [];
  if (process.getuid?.() === 0 && commandOutput("apt-get", ["--version"]) !== undefined) {
    attempts.push("apt-get install ruby-foreman");
    try {
      execFileSync(
        "sh",
        ["-c", "apt-get update -qq && apt-get install -y -qq --no-install-recommends ruby-foreman"],
        {
          stdio: "ignore",
          env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
        },
      );
    } catch {
      // reported below if foreman is still missing
    }
  } else if (commandOutput("gem", ["--version"]) !== undefined) {
    attempts.push("gem install --user-install foreman");
    try {
      execFileSync("gem", ["install", "--user-install", "--no-document", "foreman"], { stdio: "ignore" });
    } catch {
      // reported below
    }
  }
  const installed = findForeman();
  if (installed !== undefined) return installed;
  throw new Error(
    `This test runs the Procfile with foreman, which is not installed${attempts.length > 0 ? ` (tried: ${attempts.join(", ")})` : ""}. Install it: apt-get install ruby-foreman (Debian; .ci/run does this), or gem install foreman.`,
  );
}

describe("the Procfile's release process type, run by foreman", () => {
  const db = useTestDatabase("platform-foreman");
  let foreman = "";

  beforeAll(() => {
    foreman = ensureForeman();
  }, 300_000);

  it("two apps' release phases at once: the migrations run once, both exit 0", async () => {
    const work = scratchDir();
    // The slug's stamp, as heroku-postbuild writes it.
    const idFile = join(work, ".release-id");
    stampReleaseId({ SOURCE_VERSION: "f00dfacef00dfacef00dfacef00dfacef00dface" }, work);
    const apps = ["s-app", "s-admin"];
    const runs = await Promise.all(
      apps.map((app) => {
        // Each app's config vars, as `heroku local -e` would read them.
        const envFile = join(work, `${app}.env`);
        const vars = appEnv({
          DATABASE_URL: db().url,
          HEROKU_APP_NAME: app,
          DYNO: "release.1",
          RELEASE_ID_FILE: idFile,
        });
        writeFileSync(
          envFile,
          `${Object.entries(vars)
            .map(([k, v]) => `${k}=${v ?? ""}`)
            .join("\n")}\n`,
        );
        return execa(foreman, ["start", "release", "-f", join(ROOT, "Procfile"), "-d", ROOT, "-e", envFile], {
          cwd: work,
          env: cleanEnv({}),
          extendEnv: false,
          reject: false,
          all: true,
          stdin: "ignore",
          timeout: 60_000,
        });
      }),
    );
    const output = runs.map((r) => r.all).join("\n---\n");
    expect(
      runs.map((r) => r.exitCode),
      output,
    ).toEqual([0, 0]);
    // foreman ran the Procfile's release line: its prefix, and the orchestrator's lines inside it.
    expect(output).toMatch(/release\.1 +\| \[release\] s-app: /);
    expect(output).toMatch(/release\.1 +\| \[release\] s-admin: /);
    expect(output.match(/Migrating files:/g)).toHaveLength(1);

    const ledger = await readLedger(db(), "f00dfacef00dfacef00dfacef00dfacef00dface");
    expect(ledger.attempts).toHaveLength(1);
    expect(ledger.attempts[0]?.status).toBe("succeeded");
    const leader = ledger.attempts[0]?.app;
    expect(apps).toContain(leader);
    expect(ledger.followers).toEqual([
      { app: apps.find((a) => a !== leader), outcome: "succeeded", attempt_id: ledger.attempts[0]?.id },
    ]);
    const migrated = await readMigrated(db());
    expect(migrated.applied).toEqual(MIGRATIONS);
    expect(migrated.backfillEvents).toBe(migrated.orders);
  });
});
