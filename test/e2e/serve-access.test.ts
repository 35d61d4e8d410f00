// `serve` as operators and strangers meet it, through the built CLI: no token on a public address is
// exit 64 before listening; with a token every route but /healthz answers 401 without it and 200 with
// it (bearer or basic auth); /metrics, read with a real Prometheus parser, matches the real ledger.

import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { BUMP, runCli, sleep, startCli, type StartedCli } from "../support/cli.js";
import { parseExposition, valueOf } from "../support/prometheus.js";
import { waitForStderr } from "../support/wait.js";

const TOKEN = "5f0c1d9e8a7b6c5d4e3f2a1b0c9d8e7f";
const db = useTestDatabase("serve_access");
const started: StartedCli[] = [];

afterAll(() => {
  for (const cli of started) cli.process.kill("SIGKILL");
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Starts `serve` with this environment and these flags; resolves once it logged its URL. */
async function serve(env: Record<string, string>, args: string[] = []) {
  const cli = startCli(["serve", ...args], { env: { DATABASE_URL: db().url, ...env }, timeoutMs: 120_000 });
  started.push(cli);
  let stderr = "";
  cli.process.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor("serve to listen", () => {
    if (cli.process.exitCode !== null) throw new Error(`serve exited ${cli.process.exitCode}: ${stderr}`);
    return Promise.resolve(stderr.includes("release status page on") ? true : undefined);
  });
  return { cli, stderr: () => stderr };
}

async function get(url: string, authorization?: string) {
  const response = await fetch(url, authorization === undefined ? {} : { headers: { authorization } });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("serve refuses to be public without a token (exit 64, nothing listens)", () => {
  it("--host 0.0.0.0, RELEASE_SERVE_HOST, or a platform's PORT", async () => {
    const port = await freePort();
    const cases: [string[], Record<string, string>, string][] = [
      [
        ["--host", "0.0.0.0", "--port", String(port)],
        {},
        "serve would listen on 0.0.0.0 (--host asks for 0.0.0.0)",
      ],
      [
        ["--port", String(port)],
        { RELEASE_SERVE_HOST: "::" },
        "serve would listen on :: (RELEASE_SERVE_HOST asks for ::)",
      ],
      [[], { PORT: String(port) }, "(PORT is set by the platform, so it listens on every address)"],
    ];
    for (const [args, env, says] of cases) {
      const run = await runCli(["serve", ...args], { env: { DATABASE_URL: db().url, ...env } });
      expect(run.exitCode, run.stderr).toBe(64);
      expect(run.stderr).toContain(says);
      expect(run.stderr).toContain("set RELEASE_SERVE_TOKEN");
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
    }
    // Nothing was left listening.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

    const short = await runCli(["serve", "--port", String(port)], {
      env: { DATABASE_URL: db().url, RELEASE_SERVE_TOKEN: "too-short-token" },
    });
    expect(short.exitCode).toBe(64);
    expect(short.stderr).toContain("RELEASE_SERVE_TOKEN needs at least 16 characters");
  });

  it("serves loopback without credentials when no token is set", async () => {
    const port = await freePort();
    const { cli, stderr } = await serve({}, ["--port", String(port)]);
    expect(stderr()).toContain(`listening on 127.0.0.1:${port}; no credentials: loopback only;`);
    expect((await get(`http://127.0.0.1:${port}/api/releases`)).status).toBe(200);
    cli.process.kill("SIGTERM");
    expect((await cli.done).exitCode).toBe(0);
  });
});

describe("serve with RELEASE_SERVE_TOKEN", () => {
  let base = "";
  let stderr: () => string = () => "";

  beforeAll(async () => {
    // A history: one release that succeeded, one whose command failed with exit code 3.
    const env = { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" };
    expect(
      (await runCli(["run", "--release-id", "r-ok", "--", process.execPath, BUMP], { env })).exitCode,
    ).toBe(0);
    const failing = await runCli(["run", "--release-id", "r-bad", "--", process.execPath, BUMP], {
      env: { ...env, EXIT_CODE: "3" },
    });
    expect(failing.exitCode).toBe(3);
    // PORT from the environment, as on a web dyno: serve listens on every address, with the token.
    const port = await freePort();
    const served = await serve({ PORT: String(port), RELEASE_SERVE_TOKEN: TOKEN });
    base = `http://127.0.0.1:${port}`;
    stderr = served.stderr;
    expect(stderr()).toContain(`listening on 0.0.0.0:${port}; RELEASE_SERVE_TOKEN required`);
  });

  it("answers 401 with a basic auth challenge to anyone without the token, on every route but /healthz", async () => {
    for (const path of ["/", "/api/releases", "/api/releases?limit=1", "/metrics", "/nope", "/healthz/x"]) {
      for (const authorization of [
        undefined,
        `Bearer ${TOKEN.slice(0, -1)}`,
        `Bearer ${TOKEN}0`,
        basic("ops", "wrong-password-0123456789"),
        basic(TOKEN, ""),
        `Token ${TOKEN}`,
      ]) {
        const response = await get(`${base}${path}`, authorization);
        expect(response.status, `${path} with ${String(authorization)}`).toBe(401);
        expect(response.headers.get("www-authenticate")).toBe(
          'Basic realm="release-orchestrator", charset="UTF-8"',
        );
        expect(response.text).not.toMatch(/s-app|r-ok|migrate/);
      }
    }
  });

  it("answers 200 with the token as a bearer token or as the basic auth password", async () => {
    for (const authorization of [`Bearer ${TOKEN}`, basic("ops", TOKEN), basic("", TOKEN)]) {
      const api = await get(`${base}/api/releases`, authorization);
      expect(api.status).toBe(200);
      expect(
        (JSON.parse(api.text) as { releases: { releaseId: string }[] }).releases.map((r) => r.releaseId),
      ).toEqual(["r-bad", "r-ok"]);
      expect((await get(`${base}/`, authorization)).status).toBe(200);
      expect((await get(`${base}/metrics`, authorization)).status).toBe(200);
    }
    expect((await get(`${base}/nope`, `Bearer ${TOKEN}`)).status).toBe(404);
  });

  it("keeps /healthz open, saying only up", async () => {
    const health = await get(`${base}/healthz`);
    expect([health.status, health.text]).toEqual([200, "up\n"]);
  });

  it("serves /metrics that a Prometheus parser reads, matching the ledger: attempts, last success, lock, lease, durations", async () => {
    // A third release is running: its leader holds the lock and the lease.
    const leader = startCli(["run", "--release-id", "r-run", "--", process.execPath, BUMP], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app", SLEEP_MS: "60000" },
    });
    started.push(leader);
    // Its "running" line comes once it holds the lock too: the attempt's row exists a moment before the
    // lock is attached (waiting for the row alone once read the metrics in between, lock_held 0).
    await waitForStderr(leader.process, /running migrate for release r-run/);
    const metrics = await get(`${base}/metrics`, `Bearer ${TOKEN}`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const m = parseExposition(metrics.text);
    const attempts = (status: string) =>
      valueOf(m, "release_orchestrator_attempts", { task: "migrate", status });
    expect([attempts("succeeded"), attempts("failed"), attempts("running")]).toEqual([1, 1, 1]);
    expect(valueOf(m, "release_orchestrator_lock_held", { lock: "release-orchestrator" })).toBe(1);
    expect(valueOf(m, "release_orchestrator_lease_held", { task: "migrate" })).toBe(1);
    expect(valueOf(m, "release_orchestrator_waiters", { task: "migrate" })).toBe(0);
    // A follower that waits for r-run is counted while it waits (its row is live in the ledger).
    const follower = startCli(["run", "--role", "follower", "--release-id", "r-run"], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-follower" },
    });
    started.push(follower);
    await waitFor("the follower of r-run to be recorded as waiting", async () => {
      const rows = await db().query(
        "SELECT 1 FROM release_orchestrator.follower_outcomes WHERE app = 's-follower' AND outcome = 'waiting'",
      );
      return rows.length > 0 ? true : undefined;
    });
    const waiting = parseExposition((await get(`${base}/metrics`, `Bearer ${TOKEN}`)).text);
    expect(valueOf(waiting, "release_orchestrator_waiters", { task: "migrate" })).toBe(1);

    const [ok] = await db().query<{ finished: number; duration_ms: number }>(
      "SELECT extract(epoch FROM finished_at)::float8 AS finished, duration_ms FROM release_orchestrator.attempts WHERE release_id = 'r-ok'",
    );
    expect(
      valueOf(m, "release_orchestrator_last_success_timestamp_seconds", { task: "migrate" }),
    ).toBeCloseTo(ok!.finished, 3);
    const histogram = "release_orchestrator_attempt_duration_seconds";
    const succeeded = { task: "migrate", status: "succeeded" };
    expect(valueOf(m, `${histogram}_count`, succeeded)).toBe(1);
    expect(valueOf(m, `${histogram}_sum`, succeeded)).toBeCloseTo(ok!.duration_ms / 1000, 3);
    expect(valueOf(m, `${histogram}_count`, { task: "migrate", status: "failed" })).toBe(1);
    const buckets = m.samples
      .filter((s) => s.name === `${histogram}_bucket` && s.labels.status === "succeeded")
      .map((s) => s.value);
    expect(buckets).toHaveLength(11);
    expect(buckets.at(-1)).toBe(1);
    expect([...buckets].sort((a, b) => a - b)).toEqual(buckets); // cumulative
    expect(m.samples.filter((s) => s.name === `${histogram}_count` && s.labels.status === "running")).toEqual(
      [],
    );

    // Once the leader is stopped (SIGTERM reaches its command), the lock and the lease are free.
    leader.process.kill("SIGTERM");
    expect((await leader.done).exitCode).toBe(143);
    const after = parseExposition((await get(`${base}/metrics`, basic("prometheus", TOKEN))).text);
    expect(valueOf(after, "release_orchestrator_lock_held", { lock: "release-orchestrator" })).toBe(0);
    expect(valueOf(after, "release_orchestrator_lease_held", { task: "migrate" })).toBe(0);
    expect(valueOf(after, "release_orchestrator_attempts", { task: "migrate", status: "interrupted" })).toBe(
      1,
    );
    // The follower saw the leader end interrupted: it exits 76 and waits no more.
    expect((await follower.done).exitCode).toBe(76);
    const done = parseExposition((await get(`${base}/metrics`, `Bearer ${TOKEN}`)).text);
    expect(valueOf(done, "release_orchestrator_waiters", { task: "migrate" })).toBe(0);
  });

  it("never prints the token", () => {
    expect(stderr()).not.toContain(TOKEN);
  });
});
