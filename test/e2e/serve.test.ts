// `serve` end to end: the built CLI records a real history (a release where s-app led and s-admin
// waited, one whose leader failed with exit code 3, one where the follower timed out), then serves it
// with RELEASE_SERVE_TOKEN. The JSON API is checked over HTTP, and the page in a real headless Chromium
// (Debian's chromium, driven by playwright-core) with basic auth credentials: what it shows, that it
// refreshes by itself, and its screenshot for the operator guide (docs/status-page.png); without
// credentials it gets 401.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDuration } from "../../src/core/duration.js";
import { createTestDatabase, useTestDatabase, type TestDatabase } from "../harness/database.js";
import { freePort } from "../../demo/free-port.js";
import { startPostgres } from "../harness/postgres.js";
import { BUMP, ROOT, scratchDir, sleep, startCli, type StartedCli } from "../support/cli.js";
import { findTool } from "../support/tools.js";
import { gate, WAITING, waitForStderr } from "../support/wait.js";

// Debian's chromium (.ci/run installs it); without it, outside CI, the browser test is skipped.
const CHROMIUM = findTool("chromium");
// Every run saves the page to test-output/ (git-ignored); UPDATE_SCREENSHOTS=1 also refreshes the docs' copy.
const SCREENSHOTS = [
  join(ROOT, "test-output/status-page.png"),
  ...(process.env.UPDATE_SCREENSHOTS === "1" ? [join(ROOT, "docs/status-page.png")] : []),
];
/** A SHA-256 commit (64 hex digits): the page shows its first 7, by the tool's rule (shortReleaseId). */
const SHA = "3f2c1a9e5b7d4c2a8e1f0b9d6c5a4e3f2d1c0b9a8e7f6a5b4c3d2e1f0a9b8c7d";
/** A duration as the tool writes it (formatDuration): "850 ms", "34 s", "1 m 5 s", "1 h 2 m". */
const DURATION = String.raw`\d+ (?:ms|s|m(?: \d+ s)?|h(?: \d+ m)?)`;
/** A command that runs SQL statements (the blocked migration of the live release). */
const SQL = join(ROOT, "test/fixtures/sql.mjs");
/** What the failing migration prints: markup that must be shown as text, never run. */
const HOSTILE = `-- add_column(:users, :bio_html, :text, default: "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>")`;
const PG_ERROR = 'PG::UndefinedColumn: ERROR:  column "email" of relation "users" does not exist';
/** The status page's credential: a bearer token for the API, the basic auth password in the browser. */
const TOKEN = "c0ffee0123456789abcdef0123456789";

const db = useTestDatabase("serve");
const servers: StartedCli[] = [];
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  for (const server of servers) server.process.kill("SIGKILL");
});

// ------------------------------------------------------------------------------------------- helpers

interface Release {
  releaseId: string | null;
  shortReleaseId: string | null;
  leader: string | null;
  status: string;
  span: { from: string; to: string; text: string };
  attempts: {
    id: number;
    app: string;
    status: string;
    exitCode: number | null;
    durationMs: number | null;
    durationText: string;
    outputTail: string | null;
    followers: { app: string; outcome: string; exitCode: number; waitedMs: number; waitedText: string }[];
  }[];
  others: { app: string; outcome: string; exitCode: number }[];
}
interface ReleasesBody {
  schema: string;
  limit: number;
  lock: { name: string; holder: { pid: number } | null };
  releases: Release[];
}

function run(
  database: TestDatabase,
  app: string,
  releaseId: string,
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
) {
  return startCli(["run", "--release-id", releaseId, ...args], {
    env: { DATABASE_URL: database.url, RELEASE_APP_NAME: app, ...env },
    cwd,
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

/** Waits until the leader's attempt for `releaseId` is recorded as running, so that a follower waits on it. */
const leaderRunning = (database: TestDatabase, releaseId: string) =>
  waitFor(`the leader of ${releaseId} to start`, async () => {
    const rows = await database.query(
      "SELECT 1 FROM release_orchestrator.attempts WHERE release_id = $1 AND status = 'running'",
      [releaseId],
    );
    return rows.length > 0 ? true : undefined;
  });

/**
 * A leader and a follower of one release, the follower started once the leader runs; their exit codes.
 * The leader's command ends when its gate (the file $GATE) opens: once the follower waits, or, with
 * `openWhen: "follower-exited"`, once it gave up; never after a fixed time, which a loaded machine outlasts.
 */
async function leaderAndFollower(
  releaseId: string,
  leader: string[],
  follower: string[] = [],
  leaderEnv: Record<string, string> = {},
  cwd?: string,
  openWhen: "follower-waits" | "follower-exited" = "follower-waits",
): Promise<[number, number]> {
  const gate = join(scratchDir(), "open");
  const led = run(
    db(),
    "s-app",
    releaseId,
    ["--role", "leader", ...leader],
    { GATE: gate, ...leaderEnv },
    cwd,
  );
  await leaderRunning(db(), releaseId);
  const waited = run(db(), "s-admin", releaseId, ["--role", "follower", ...follower]);
  await (openWhen === "follower-waits" ? waitForStderr(waited.process, WAITING) : waited.done);
  writeFileSync(gate, "");
  const [a, b] = await Promise.all([led.done, waited.done]);
  return [a.exitCode, b.exitCode];
}

/** Starts `serve` on a free port and waits for its one start line; returns its base URL. */
async function serve(url: string): Promise<{ base: string; cli: StartedCli; stderr: () => string }> {
  const port = await freePort();
  const cli = startCli(["serve", "--port", String(port), "--host", "127.0.0.1"], {
    env: { DATABASE_URL: url, RELEASE_SERVE_TOKEN: TOKEN },
    timeoutMs: 300_000,
  });
  servers.push(cli);
  let stderr = "";
  cli.process.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor("serve to listen", () =>
    Promise.resolve(stderr.includes("release status page on") ? true : undefined),
  );
  return { base: `http://127.0.0.1:${port}`, cli, stderr: () => stderr };
}

/** A request with the token, unless the caller sends its own Authorization (or none: `authorization: ""`). */
async function get(url: string, init: RequestInit & { authorization?: string } = {}) {
  const { authorization = `Bearer ${TOKEN}`, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (authorization !== "") headers.set("authorization", authorization);
  const response = await fetch(url, { ...rest, headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

// --------------------------------------------------------------------------------------------- tests

let base = "";
let password = "";
let served: Awaited<ReturnType<typeof serve>>;

/** The history: the built CLI, real processes, the real ledger. Then `serve` on it. */
beforeAll(async () => {
  // 1. s-app leads, s-admin waits for it and succeeds with it; s-worker (follower-mode skip) does not wait.
  // The leader's command runs until s-admin waits (a gate, not a fixed time a slow follower could miss).
  const hold = gate();
  // After the gate it still runs 1 s, so that s-admin's recorded wait is a real one (over 500 ms).
  const first = run(db(), "s-app", SHA, [
    "--role",
    "leader",
    "--",
    "sh",
    "-c",
    `"$@" && sleep 1`,
    "sh",
    ...hold.command,
  ]);
  await leaderRunning(db(), SHA);
  const others = [
    run(db(), "s-admin", SHA, ["--role", "follower"]),
    run(db(), "s-worker", SHA, ["--role", "follower", "--follower-mode", "skip"]),
  ];
  await waitForStderr(others[0]!.process, WAITING);
  await others[1]!.done;
  hold.open();
  const firstRuns = await Promise.all([first, ...others].map((p) => p.done));
  expect(firstRuns.map((r) => r.exitCode)).toEqual([0, 0, 0]);
  // 2. s-app's migration fails with exit code 3; s-admin, waiting on it, exits 76.
  const app = scratchDir();
  writeFileSync(
    join(app, "migrate.mjs"),
    [
      `import { existsSync } from "node:fs";`,
      `console.log("== 20251121120000 AddBioToUsers: migrating =====");`,
      `console.log(${JSON.stringify(HOSTILE)});`,
      `const gate = setInterval(() => { if (!existsSync(process.env.GATE)) return; clearInterval(gate); console.error(${JSON.stringify(PG_ERROR)}); process.exit(3); }, 50);`,
    ].join("\n"),
  );
  expect(await leaderAndFollower("8b41d07", ["--", "node", "migrate.mjs"], [], {}, app)).toEqual([3, 76]);
  // 3. s-admin gives up after 1 s while s-app still migrates: exit 75.
  const gated = ["sh", "-c", 'until [ -e "$GATE" ]; do sleep 0.05; done; exec "$0" "$1"'];
  expect(
    await leaderAndFollower(
      "c9e2f44",
      ["--", ...gated, process.execPath, BUMP],
      ["--wait-timeout", "1s"],
      {},
      undefined,
      "follower-exited",
    ),
  ).toEqual([0, 75]);
  // A tail that carries the database URL (as another app's output might): serve must scrub the password.
  password = decodeURIComponent(new URL(db().url).password);
  expect(password.length).toBeGreaterThan(3);
  await db().query(
    "UPDATE release_orchestrator.attempts SET output_tail = output_tail || $1 WHERE release_id = 'c9e2f44'",
    [`connecting to ${db().url}\n`],
  );
  served = await serve(db().url);
  base = served.base;
});

describe("serve: the release status page", () => {
  it("logs one line with its URL, answers /healthz, /api/releases (with ?limit= and an ETag), 404 and 405", async () => {
    expect(served.stderr()).toMatch(/^\[release\] release status page on http:\/\/127\.0\.0\.1:\d+\/ /m);
    const health = await get(`${base}/healthz`, { authorization: "" });
    expect([health.status, health.text]).toEqual([200, "up\n"]);
    const stranger = await get(`${base}/api/releases`, { authorization: "" });
    expect([stranger.status, stranger.headers.get("www-authenticate")]).toEqual([
      401,
      'Basic realm="release-orchestrator", charset="UTF-8"',
    ]);

    const api = await get(`${base}/api/releases`);
    expect(api.status).toBe(200);
    expect(api.headers.get("content-type")).toBe("application/json");
    const body = JSON.parse(api.text) as ReleasesBody;
    expect(body.schema).toBe("release_orchestrator");
    expect(body.limit).toBe(20);
    expect(body.lock).toEqual({ name: "release-orchestrator", holder: null });
    expect(body.releases.map((r) => [r.releaseId, r.leader, r.status])).toEqual([
      ["c9e2f44", "s-app", "succeeded"],
      ["8b41d07", "s-app", "failed"],
      [SHA, "s-app", "succeeded"],
    ]);
    const [timedOut, failed, ok] = body.releases as [Release, Release, Release];
    expect(ok.attempts).toHaveLength(1);
    expect(ok.attempts[0]).toMatchObject({ app: "s-app", status: "succeeded", exitCode: 0 });
    expect(ok.attempts[0]?.followers).toMatchObject([{ app: "s-admin", outcome: "succeeded", exitCode: 0 }]);
    expect(ok.attempts[0]?.followers[0]?.waitedMs).toBeGreaterThan(500);
    // The texts the page shows, by the tool's own rules: the short id (of a 64-digit commit too), durations.
    expect(body.releases.map((r) => r.shortReleaseId)).toEqual(["c9e2f44", "8b41d07", "3f2c1a9"]);
    expect(ok.attempts[0]?.durationText).toBe(formatDuration(ok.attempts[0]?.durationMs ?? -1));
    expect(ok.attempts[0]?.followers[0]?.waitedText).toBe(
      formatDuration(ok.attempts[0]?.followers[0]?.waitedMs ?? -1),
    );
    expect(ok.span.text).toBe(formatDuration(Date.parse(ok.span.to) - Date.parse(ok.span.from)));
    expect(ok.others).toMatchObject([{ app: "s-worker", outcome: "skipped", exitCode: 0 }]);
    expect(failed.attempts[0]).toMatchObject({ app: "s-app", status: "failed", exitCode: 3 });
    expect(failed.attempts[0]?.outputTail).toContain(HOSTILE);
    expect(failed.attempts[0]?.outputTail).toContain(PG_ERROR);
    expect(failed.attempts[0]?.followers).toMatchObject([
      { app: "s-admin", outcome: "failed", exitCode: 76 },
    ]);
    expect(timedOut.attempts[0]?.followers).toMatchObject([
      { app: "s-admin", outcome: "timeout", exitCode: 75 },
    ]);
    expect(timedOut.attempts[0]?.outputTail).toMatch(/connecting to postgres:\/\/postgres:\*\*\*\*\*@/);
    expect(api.text).not.toContain(password);

    const newest = JSON.parse((await get(`${base}/api/releases?limit=1`)).text) as ReleasesBody;
    expect(newest.releases.map((r) => r.releaseId)).toEqual(["c9e2f44"]);
    expect((await get(`${base}/api/releases?limit=0`)).status).toBe(400);
    expect((await get(`${base}/api/releases?limit=lots`)).text).toContain("limit must be a whole number");
    const etag = api.headers.get("etag");
    expect(etag).toMatch(/^W\/"/);
    expect((await get(`${base}/api/releases`, { headers: { "if-none-match": etag ?? "" } })).status).toBe(
      304,
    );
    expect((await get(`${base}/nope`)).status).toBe(404);
    expect((await get(`${base}/api/releases/`)).status).toBe(404);
    const post = await get(`${base}/`, { method: "POST" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
    const page = await get(`${base}/`);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'none'.*script-src 'sha256-/);
    expect(page.text).not.toMatch(/(src|href)="(https?:)?\/\//);

    // A lost session (what a server restart does to the pool): the next request reconnects.
    const cut = await db().query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'release-orchestrator serve'",
    );
    expect(cut.length).toBeGreaterThan(0);
    expect((await get(`${base}/api/releases`)).status).toBe(200);
  });

  it("renders the history in a real Chromium, refreshes by itself, and saves the docs' screenshot", async ({
    skip,
  }) => {
    if (CHROMIUM.path === undefined) return skip(CHROMIUM.missing);
    const { releases } = JSON.parse((await get(`${base}/api/releases`)).text) as ReleasesBody;
    const [timedOut, failed, ok] = releases as [Release, Release, Release];
    const waitedMs = releases[2]?.attempts[0]?.followers[0]?.waitedMs ?? -1;
    browser = await chromium.launch({
      executablePath: CHROMIUM.path,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    // Without the right credentials the browser gets nothing of the page: with none, headless Chromium has
    // nobody to ask and the navigation fails on the challenge; with a wrong token, it ends on the 401.
    for (const httpCredentials of [undefined, { username: "ops", password: `${TOKEN}x` }]) {
      const stranger = await browser.newContext(httpCredentials === undefined ? {} : { httpCredentials });
      const outcome = await (await stranger.newPage()).goto(`${base}/`).catch((error: Error) => error);
      if (outcome instanceof Error) {
        expect(outcome.message).toMatch(/ERR_INVALID_AUTH_CREDENTIALS/);
      } else {
        expect(outcome?.status()).toBe(401);
        expect(outcome?.headers()["www-authenticate"]).toMatch(/^Basic realm=/);
        expect(await outcome?.text()).not.toContain("Releases");
      }
      await stranger.close();
    }

    // With them (what a person types into the browser's prompt: any user name, the token as password).
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      colorScheme: "light",
      timezoneId: "UTC",
      locale: "en-US",
      httpCredentials: { username: "ops", password: TOKEN },
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error" || /Content Security Policy/i.test(message.text())) {
        problems.push(`console: ${message.text()}`);
      }
    });
    const offsite: string[] = [];
    page.on("request", (request) => {
      if (!request.url().startsWith(base) && !request.url().startsWith("data:")) offsite.push(request.url());
    });

    await page.goto(`${base}/`);
    const cards = page.locator("section.release");
    await expect.poll(() => cards.count(), { timeout: 15_000 }).toBe(3);
    const card = (id: string) => page.locator(`section.release[data-release="${id}"]`);
    const lane = (id: string, app: string) => card(id).locator(`.lane[data-app="${app}"]`);

    // Release 1: s-app led, s-admin waited for it (for as long as the ledger says) and succeeded. Its id
    // has 64 hex digits (a SHA-256 commit): shown short, whole in the title. Durations read as the CLI
    // writes them (formatDuration), never in a format of the page's own.
    expect(await card(SHA).locator(".rid").textContent()).toBe("3f2c1a9");
    expect(await card(SHA).locator(".rid").getAttribute("title")).toBe(SHA);
    expect(await card(SHA).locator(".head").innerText()).toMatch(/succeeded[\s\S]*led by s-app/);
    expect(await lane(SHA, "s-app").innerText()).toContain(
      `led · ran ${formatDuration(ok.attempts[0]?.durationMs ?? -1)} · exit 0`,
    );
    expect(await lane(SHA, "s-admin").innerText()).toContain(
      `waited ${formatDuration(waitedMs)} for s-app · succeeded`,
    );
    expect(await card(SHA).locator(".head .when").innerText()).toMatch(new RegExp(` · ${ok.span.text}$`));
    expect(await card(SHA).locator(".axis").innerText()).toContain(`+${ok.span.text}`);
    expect(await page.locator("#releases").innerText()).not.toMatch(/\d+ min\b|\d+\.\d s\b/);
    expect(await lane(SHA, "s-worker").innerText()).toContain("skipped (follower-mode skip)");
    // On the timeline, s-admin's wait starts after s-app started and ends after s-app finished.
    const leaderBar = await lane(SHA, "s-app").locator(".bar").boundingBox();
    const waitBar = await lane(SHA, "s-admin").locator(".bar").boundingBox();
    expect(waitBar!.x).toBeGreaterThan(leaderBar!.x + 5);
    expect(waitBar!.x + waitBar!.width).toBeGreaterThanOrEqual(leaderBar!.x + leaderBar!.width - 2);

    // Release 2: the failure, its exit code and its output tail, as text.
    expect(await card("8b41d07").getAttribute("data-status")).toBe("failed");
    expect(await lane("8b41d07", "s-app").innerText()).toContain("failed, exit code 3");
    expect(await lane("8b41d07", "s-admin").innerText()).toContain(
      `waited ${formatDuration(failed.attempts[0]?.followers[0]?.waitedMs ?? -1)} for s-app · leader failed (exit 76)`,
    );
    const failure = card("8b41d07").locator("details.failure");
    expect(await failure.getAttribute("open")).not.toBeNull();
    expect(await failure.locator("summary").innerText()).toContain(
      `Attempt #${failed.attempts[0]?.id} by s-app failed with exit code 3 after ${formatDuration(failed.attempts[0]?.durationMs ?? -1)}`,
    );
    const tail = await failure.locator("pre").textContent();
    expect(tail).toContain(HOSTILE);
    expect(tail).toContain(PG_ERROR);
    expect(await page.locator("#releases img, #releases script").count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();

    // Release 3: the follower that timed out; the leader's output (folded) with the password scrubbed.
    expect(await lane("c9e2f44", "s-admin").innerText()).toContain(
      `timed out after ${formatDuration(timedOut.attempts[0]?.followers[0]?.waitedMs ?? -1)} for s-app (exit 75)`,
    );
    const output = card("c9e2f44").locator("details.output");
    expect(await output.getAttribute("open")).toBeNull();
    expect(await output.locator("pre").textContent()).toMatch(
      /connecting to postgres:\/\/postgres:\*\*\*\*\*@/,
    );
    expect(await page.locator("#live").innerText()).toMatch(/live · updated \d\d:\d\d:\d\d/);
    expect(await page.content()).not.toContain(password);

    // It refreshes by itself: a new release shows up running (and the lock held) with s-admin waiting for
    // it, live. Its migration is blocked by a transaction the app's web process left open, and the page
    // says by whom. Once the app commits, the release finishes.
    await db().query("CREATE TABLE IF NOT EXISTS users (id int)");
    const web = new pg.Client({ connectionString: db().url, application_name: "web.1" });
    web.on("error", () => {});
    await web.connect();
    await web.query("BEGIN");
    await web.query("SELECT count(*) FROM users");
    const webPid = (await web.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
    const leader = run(db(), "s-app", "e41f9b2", [
      "--role",
      "leader",
      "--",
      process.execPath,
      SQL,
      "ALTER TABLE users ADD COLUMN bio_html text",
    ]);
    await leaderRunning(db(), "e41f9b2");
    const follower = run(db(), "s-admin", "e41f9b2", ["--role", "follower"]);
    await page.locator('section.release[data-release="e41f9b2"][data-status="running"]').waitFor({
      timeout: 15_000,
    });
    expect(await page.locator("#lock").innerText()).toMatch(
      /lock held by pid \d+ \(release-orchestrator s-app/,
    );
    await expect
      .poll(() => lane("e41f9b2", "s-admin").innerText(), { timeout: 15_000 })
      .toMatch(new RegExp(`waiting ${DURATION} for s-app since \\d\\d:\\d\\d:\\d\\d`));
    await expect
      .poll(() => lane("e41f9b2", "s-app").innerText(), { timeout: 30_000 })
      .toMatch(
        new RegExp(
          `running for ${DURATION}[\\s\\S]*blocked: the command's session \\(backend pid \\d+\\) has waited \\d+ s for AccessExclusiveLock on users, blocked by backend pid ${webPid} \\(application_name "web\\.1", idle in transaction since`,
        ),
      );
    mkdirSync(join(ROOT, "docs"), { recursive: true });
    for (const path of SCREENSHOTS) await page.screenshot({ path, fullPage: true });
    await web.query("COMMIT");
    await web.end();
    expect((await leader.done).exitCode).toBe(0);
    expect((await follower.done).exitCode).toBe(0);
    await page.locator('section.release[data-release="e41f9b2"][data-status="succeeded"]').waitFor({
      timeout: 15_000,
    });
    await expect
      .poll(() => lane("e41f9b2", "s-admin").innerText(), { timeout: 15_000 })
      .toMatch(new RegExp(`waited ${DURATION} for s-app · succeeded`));
    expect(await cards.count()).toBe(4);
    expect(await page.locator("#lock").innerText()).toBe("lock free");

    expect(problems).toEqual([]);
    expect(offsite).toEqual([]);
    await context.close();
  }, 120_000);

  it("stops on SIGTERM with exit 0, having logged one line and never the password nor the token", async () => {
    served.cli.process.kill("SIGTERM");
    const ended = await served.cli.done;
    expect(ended.exitCode).toBe(0);
    expect(ended.stderr).not.toContain(password);
    expect(ended.stderr).not.toContain(TOKEN);
    expect(ended.stderr.trim().split("\n")).toEqual([expect.stringContaining("release status page on")]);
  });

  it.runIf(process.env.TEST_DATABASE_URL === undefined)(
    "keeps answering across a PostgreSQL restart: /healthz says 503 while it is down, then 200",
    async () => {
      const server = await startPostgres({ forceKind: "local" });
      try {
        const database = await createTestDatabase("serve-restart", { adminUrl: server.adminUrl });
        expect((await run(database, "s-app", "r1", ["--", process.execPath, BUMP]).done).exitCode).toBe(0);
        const { base, stderr } = await serve(database.url);
        expect((await get(`${base}/healthz`)).status).toBe(200);

        const restarting = server.restart!(3000);
        await waitFor("/healthz to say 503", async () =>
          (await get(`${base}/healthz`)).status === 503 ? true : undefined,
        );
        const down = await get(`${base}/api/releases`);
        expect(down.status).toBe(503);
        expect(JSON.parse(down.text)).toEqual({
          error: "The database does not answer; retrying. The server log says why.",
        });
        expect((await get(`${base}/healthz`)).text).toBe("down\n");
        expect((await get(`${base}/metrics`)).status).toBe(503);
        await restarting;
        await waitFor("/healthz to say 200 again", async () =>
          (await get(`${base}/healthz`)).status === 200 ? true : undefined,
        );
        const after = JSON.parse((await get(`${base}/api/releases`)).text) as ReleasesBody;
        expect(after.releases.map((r) => r.releaseId)).toEqual(["r1"]);
        expect(stderr()).toMatch(/warning: status page: .*retries by itself/);
        expect(stderr()).toContain("status page: the database answers again.");
        expect(stderr()).not.toContain(server.password);
        await database.drop();
      } finally {
        await server.stop();
      }
    },
    120_000,
  );
});
