// One owner through a pooler, in one mode: see test/support/pooler-rounds.ts (each mode is its own
// file so the modes run side by side; they mostly wait on commands, polls and leases). Also, through
// this pooler: a pooled URL is not refused, and a direct RELEASE_DATABASE_URL beside it.

import { describe, expect, it } from "vitest";
import { BUMP, runCli } from "../support/cli.js";
import { describePoolerMode, MODES, usePoolerMode } from "../support/pooler-rounds.js";

const { db, url } = usePoolerMode(MODES.transaction4);
describePoolerMode(MODES.transaction4, { db, url });

describe("a pooled URL", () => {
  it("a pooled URL is not refused: run exits 0 and doctor passes, naming the lease as what decides", async () => {
    const run = await runCli(["run", "--release-id", "pool-plain", "--", "true"], {
      env: { DATABASE_URL: url(), RELEASE_APP_NAME: "s-app" },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const doctor = await runCli(["doctor", "--release-id", "pool-plain"], { env: { DATABASE_URL: url() } });
    expect(doctor.exitCode, doctor.stdout).toBe(0);
    expect(doctor.stdout).toMatch(/^PASS {2}session: The connection goes through a pooler, proxy or NAT/m);
    const direct = await runCli(["doctor", "--release-id", "pool-plain"], {
      env: { DATABASE_URL: db().url },
    });
    expect(direct.stdout).toMatch(/^PASS {2}session: The connection is a session of its own/m);
  });

  it("with RELEASE_DATABASE_URL direct, the command keeps the pooled DATABASE_URL", async () => {
    const pooled = url();
    const port = new URL(pooled).port;
    const run = await runCli(
      [
        "run",
        "--release-id",
        "pool-split",
        "--",
        "sh",
        "-c",
        `case "$DATABASE_URL" in *:${port}/*) echo pooled;; esac; exec "$0" "$@"`,
        process.execPath,
        BUMP,
      ],
      { env: { DATABASE_URL: pooled, RELEASE_DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" } },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain("pooled\n");
    expect(await db().query("SELECT app FROM counter")).toEqual([{ app: "s-app" }]);
  });
});
