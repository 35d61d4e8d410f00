// `serve` through a real PgBouncer, in transaction mode (Heroku's connection pooling) and in session
// mode (issue 23): the page's pool sends no startup parameter PgBouncer refuses (it once sent
// statement_timeout, and every read answered 503 for good). A release recorded by `run` through the
// pooler is listed, /metrics exports the failed series at 0 before the first failure (so an alert on
// its increase fires on that failure) and at 1 after it; status, history and doctor work through it too.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../demo/free-port.js";
import { useTestDatabase } from "../harness/database.js";
import { BUMP, runCli, startCli, type StartedCli } from "../support/cli.js";
import { startBouncer, type Bouncer } from "../support/pgbouncer.js";
import { parseExposition, valueOf } from "../support/prometheus.js";
import { requireTool } from "../support/tools.js";
import { waitFor } from "../support/wait.js";

const tool = requireTool("pgbouncer");
const TOKEN = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a";

async function get(url: string) {
  const response = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: response.status, text: await response.text() };
}

for (const poolMode of ["transaction", "session"] as const) {
  describe(`serve through PgBouncer in ${poolMode} mode`, () => {
    const db = useTestDatabase(`serve_pooled_${poolMode}`);
    let bouncer: Bouncer | undefined;
    let server: StartedCli | undefined;
    let stderr = "";
    let base = "";
    const env = () => ({ DATABASE_URL: bouncer!.url, RELEASE_APP_NAME: "p-app" });

    beforeAll(async () => {
      if (tool.path === undefined) return;
      // Room for the page's two sessions and a run's (session mode keeps a server connection per client).
      bouncer = await startBouncer(db().url, { poolMode, poolSize: 6 });
      // A release recorded through the pooler before the page starts.
      const ok = await runCli(["run", "--release-id", "p-ok", "--", process.execPath, BUMP], { env: env() });
      expect(ok.exitCode, ok.stderr).toBe(0);
      const port = await freePort();
      server = startCli(["serve", "--port", String(port), "--host", "127.0.0.1"], {
        env: { DATABASE_URL: bouncer.url, RELEASE_SERVE_TOKEN: TOKEN },
        timeoutMs: 120_000,
      });
      server.process.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      await waitFor("serve to listen", () => {
        if (server!.process.exitCode !== null) throw new Error(`serve exited: ${stderr}`);
        return Promise.resolve(stderr.includes("release status page on") ? true : undefined);
      });
      base = `http://127.0.0.1:${port}`;
    });

    afterAll(() => {
      server?.process.kill("SIGKILL");
      bouncer?.stop();
    });

    it("answers /healthz, lists the release in /api/releases, and serves /metrics", async () => {
      const health = await get(`${base}/healthz`);
      expect([health.status, health.text], stderr).toEqual([200, "up\n"]);
      const api = await get(`${base}/api/releases`);
      expect(api.status, stderr).toBe(200);
      const body = JSON.parse(api.text) as { releases: { releaseId: string; status: string }[] };
      expect(body.releases.map((r) => [r.releaseId, r.status])).toEqual([["p-ok", "succeeded"]]);
      const metrics = await get(`${base}/metrics`);
      expect(metrics.status, stderr).toBe(200);
      const m = parseExposition(metrics.text);
      expect(valueOf(m, "release_orchestrator_attempts", { task: "migrate", status: "succeeded" })).toBe(1);
      expect(stderr).not.toMatch(/unsupported startup parameter|warning/);
    });

    it("exports the failed series at 0 before the first failure, at 1 after it", async () => {
      const failed = async () => {
        const metrics = await get(`${base}/metrics`);
        expect(metrics.status, stderr).toBe(200);
        return valueOf(parseExposition(metrics.text), "release_orchestrator_attempts", {
          task: "migrate",
          status: "failed",
        });
      };
      expect(await failed()).toBe(0);
      const bad = await runCli(["run", "--release-id", "p-bad", "--", process.execPath, BUMP], {
        env: { ...env(), EXIT_CODE: "3" },
      });
      expect(bad.exitCode, bad.stderr).toBe(3);
      expect(await failed()).toBe(1);
      const api = JSON.parse((await get(`${base}/api/releases`)).text) as {
        releases: { releaseId: string; status: string }[];
      };
      expect(api.releases.map((r) => [r.releaseId, r.status])).toEqual([
        ["p-bad", "failed"],
        ["p-ok", "succeeded"],
      ]);
    });

    it("status, history and doctor read the same ledger through the pooler", async () => {
      const status = await runCli(["status"], { env: env() });
      expect(status.exitCode, status.stderr).toBe(0);
      const history = await runCli(["history"], { env: env() });
      expect(history.exitCode, history.stderr).toBe(0);
      expect(history.stdout).toContain("p-ok");
      const doctor = await runCli(["doctor"], { env: env() });
      expect(doctor.exitCode, doctor.stdout).toBe(0);
      expect(doctor.stdout).toMatch(/^PASS {2}connection: Connected to /m);
      expect(`${status.stderr}${history.stderr}${doctor.stdout}${doctor.stderr}`).not.toMatch(
        /unsupported startup parameter/,
      );
    });
  });
}
