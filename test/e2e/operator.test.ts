// Operator experience: status, history, doctor, live progress (terminal and logs), --json, --quiet,
// NO_COLOR; all sharing run's config, errors and exit codes, never printing the password.
/* eslint-disable no-control-regex -- terminal escape sequences are what these tests look for */

import { execa } from "execa";
import { describe, expect, inject, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { CLI, cleanEnv, runCli, scratchDir, startCli } from "../support/cli.js";
import { WAITING, gate, waitForRunningAttempt, waitForStderr } from "../support/wait.js";

const password = inject("pgPassword");
const db = useTestDatabase("operator");

function noSecret(text: string) {
  expect(text).not.toContain(password);
}

describe("status", () => {
  it("shows who holds the lock, the running attempt and its heartbeat, and the latest attempts; --json too", async () => {
    const command = gate();
    const leader = startCli(["run", "--release-id", "st-1", "--", ...command.command], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" },
    });
    await waitForRunningAttempt(db(), "st-1");
    const text = await runCli(["status"], { env: { DATABASE_URL: db().url } });
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /Lock "release-orchestrator" \(key \d+, \d+\): held by backend pid \d+ \(release-orchestrator s-app auto st-1\), idle/,
    );
    expect(text.stdout).toMatch(
      /Running: attempt #\d+ by s-app \(auto, pid \d+ on \S+\) of migrate for st-1, since .*, lease renewed \d+ m?s ago, lease ends in .+ unless renewed \(advisory lock on backend pid \d+\)\./,
    );
    const json = await runCli(["status", "--json"], { env: { DATABASE_URL: db().url } });
    const report = JSON.parse(json.stdout) as {
      lock: { holder: { applicationName: string } };
      running: { app: string; releaseId: string }[];
    };
    expect(report.lock.holder.applicationName).toBe("release-orchestrator s-app auto st-1");
    expect(report.running.map((r) => [r.app, r.releaseId])).toEqual([["s-app", "st-1"]]);
    command.open();
    expect((await leader.done).exitCode).toBe(0);
    const after = await runCli(["status"], { env: { DATABASE_URL: db().url } });
    expect(after.stdout).toMatch(/: free\./);
    expect(after.stdout).toMatch(/Running: nothing\./);
    expect(after.stdout).toMatch(/st-1\s+migrate\s+#\d+\s+s-app\s+auto\s+succeeded\s+0/);
    noSecret(text.stdout + text.stderr + json.stdout + after.stdout);
  });
});

describe("history", () => {
  it("lists attempts with the processes that waited on them; filters by release and app; --json", async () => {
    const command = gate();
    const leader = startCli(["run", "--release-id", "hi-1", "--", ...command.command], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" },
    });
    await waitForRunningAttempt(db(), "hi-1");
    const waiting = startCli(["run", "--role", "follower", "--release-id", "hi-1"], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-admin" },
    });
    await waitForStderr(waiting.process, WAITING);
    command.open();
    const follower = await waiting.done;
    expect(follower.exitCode).toBe(0);
    expect((await leader.done).exitCode).toBe(0);
    const failed = await runCli(
      ["run", "--release-id", "hi-2", "--", "sh", "-c", "echo broken migration >&2; exit 3"],
      {
        env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" },
      },
    );
    expect(failed.exitCode).toBe(3);

    const all = await runCli(["history"], { env: { DATABASE_URL: db().url } });
    expect(all.exitCode, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/#\d+\s+hi-2\s+migrate\s+s-app\s+auto\s+failed\s+3/);
    expect(all.stdout).toMatch(/#\d+\s+hi-1\s+migrate\s+s-app\s+auto\s+succeeded\s+0/);
    expect(all.stdout).toMatch(/↳ s-admin\s+follower\s+succeeded\s+0\s+\S+ \S+\s+waited \d/);

    const one = await runCli(["history", "--release", "hi-2"], { env: { DATABASE_URL: db().url } });
    expect(one.stdout).toContain("hi-2");
    expect(one.stdout).not.toContain("hi-1");
    const byApp = await runCli(["history", "--app", "s-admin", "--json"], {
      env: { DATABASE_URL: db().url },
    });
    const attempts = JSON.parse(byApp.stdout) as {
      releaseId: string;
      followers: { app: string; outcome: string }[];
    }[];
    expect(attempts.map((a) => a.releaseId)).toEqual(["hi-1"]);
    expect(attempts[0]?.followers).toMatchObject([{ app: "s-admin", outcome: "succeeded" }]);
    const limited = await runCli(["history", "--limit", "1", "--json"], { env: { DATABASE_URL: db().url } });
    expect((JSON.parse(limited.stdout) as unknown[]).length).toBe(1);
    const bad = await runCli(["history", "--limit", "lots"], { env: { DATABASE_URL: db().url } });
    expect(bad.exitCode).toBe(64);
    expect(bad.stderr).toMatch(/limit must be a whole number from 1 to 9999 \(from --limit\)\./);
    noSecret(all.stdout + one.stdout + byApp.stdout + bad.stderr);
  });
});

describe("doctor", () => {
  it("passes on a direct local connection and explains each finding; exit 0", async () => {
    const run = await runCli(["doctor", "--release-id", "doc-1"], { env: { DATABASE_URL: db().url } });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    for (const check of [
      "role",
      "release id",
      "connection",
      "server version",
      "tls",
      "ledger",
      "session",
      "lock",
    ]) {
      expect(run.stdout).toMatch(new RegExp(`^PASS  ${check}: `, "m"));
    }
    expect(run.stdout).toMatch(/Release id doc-1 \(from --release-id \/ RELEASE_ID\)/);
    expect(run.stdout).toMatch(/All checks passed\./);
    noSecret(run.stdout + run.stderr);
  });

  it("fails (78) with the fix when the user may not create the ledger schema, or the database is unreachable", async () => {
    const role = `doc_${Date.now()}`;
    await db().query(`CREATE ROLE ${role} LOGIN PASSWORD 'doctor-pw-123'`);
    const url = new URL(db().url);
    await db().query(`GRANT CONNECT ON DATABASE "${url.pathname.slice(1)}" TO ${role}`);
    url.username = role;
    url.password = "doctor-pw-123";
    const run = await runCli(["doctor", "--schema", "doc_ledger", "--release-id", "doc-2"], {
      env: { DATABASE_URL: url.toString() },
    });
    expect(run.exitCode).toBe(78);
    expect(run.stdout).toMatch(
      /^FAIL {2}ledger: This user may not create the ledger schema doc_ledger\.\n\s+fix: Create it once as an owner/m,
    );
    expect(run.stdout).toMatch(/Some checks failed/);
    const json = await runCli(["doctor", "--json", "--schema", "doc_ledger", "--release-id", "doc-2"], {
      env: { DATABASE_URL: url.toString() },
    });
    const report = JSON.parse(json.stdout) as { ok: boolean; findings: { check: string; verdict: string }[] };
    expect(report.ok).toBe(false);
    expect(report.findings.find((f) => f.check === "ledger")?.verdict).toBe("fail");
    const down = await runCli(["doctor", "--connect-timeout", "500ms"], {
      env: { DATABASE_URL: "postgres://u:pw-down-1@127.0.0.1:1/x", RELEASE_ID: "d" },
    });
    expect(down.exitCode).toBe(78);
    expect(down.stdout).toMatch(/^FAIL {2}connection: Nothing accepted connections at 127\.0\.0\.1:1/m);
    expect(run.stdout + json.stdout + down.stdout + down.stderr).not.toMatch(/doctor-pw-123|pw-down-1/);
  });

  it("refuses a read-only server (a standby, or a read-only session): doctor fails and run exits 78, nothing run", async () => {
    const role = `ro_${Date.now()}`;
    await db().query(`CREATE ROLE ${role} LOGIN PASSWORD 'read-only-pw-1'`);
    await db().query(`ALTER ROLE ${role} SET default_transaction_read_only = on`);
    const url = new URL(db().url);
    url.username = role;
    url.password = "read-only-pw-1";
    const doctor = await runCli(["doctor", "--release-id", "doc-3"], {
      env: { DATABASE_URL: url.toString() },
    });
    expect(doctor.exitCode, doctor.stdout + doctor.stderr).toBe(78);
    expect(doctor.stdout).toMatch(/^FAIL {2}primary: The server is read-only/m);
    const run = await runCli(["run", "--release-id", "doc-3", "--", "sh", "-c", "echo RAN"], {
      env: { DATABASE_URL: url.toString() },
    });
    expect(run.exitCode, run.stderr).toBe(78);
    expect(run.stderr).toMatch(
      /The database URL points at a read-only server .*; point DATABASE_URL or RELEASE_DATABASE_URL at the primary\./,
    );
    expect(run.stdout).not.toContain("RAN");
    expect(doctor.stdout + run.stdout + run.stderr).not.toContain("read-only-pw-1");
  });
});

describe("progress and output formats", () => {
  it("without a terminal, a waiting process prints a plain progress line at once and every 10 s", async () => {
    const command = gate();
    const leader = startCli(["run", "--release-id", "pg-1", "--", ...command.command], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" },
    });
    await waitForRunningAttempt(db(), "pg-1");
    const waiting = startCli(["run", "--role", "follower", "--release-id", "pg-1"], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-admin" },
    });
    // Its first progress line at once, the second 10 s later: then the leader may finish.
    await waitForStderr(waiting.process, /waiting for [^\n]*\n[^]*waiting for /, 40_000);
    command.open();
    const follower = await waiting.done;
    await leader.done;
    const lines = follower.stderr.split("\n").filter((l) => l.includes("waiting for"));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatch(
      /^\[release\] s-admin: follower; waiting for s-app \(auto, pid \d+, since \d\d:\d\d:\d\d\) to finish migrate for release pg-1 \.\.\. \d+ ms \(55 m left\)$/,
    );
    expect(follower.stderr).not.toContain("\r");
  }, 60_000);

  it("on a terminal, the progress line is redrawn in place, with colour unless NO_COLOR", async () => {
    const command = gate();
    const leader = startCli(["run", "--release-id", "tty-1", "--", ...command.command], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" },
    });
    await waitForRunningAttempt(db(), "tty-1");
    const inTerminal = (extra: Record<string, string>) =>
      execa(
        "script",
        [
          "-qfec",
          `${process.execPath} ${CLI} run --role follower --release-id tty-1 --wait-timeout 1s`,
          "/dev/null",
        ],
        {
          env: cleanEnv({ DATABASE_URL: db().url, RELEASE_APP_NAME: "s-admin", TERM: "xterm", ...extra }),
          extendEnv: false,
          reject: false,
          cwd: scratchDir(),
        },
      );
    const colour = await inTerminal({});
    expect(colour.exitCode).toBe(75);
    expect(colour.stdout).toMatch(/\r\x1b\[K\[release\] s-admin: follower; waiting for s-app/);
    expect(colour.stdout).toContain("\x1b[31m[release] s-admin: error: timed out");
    const plain = await inTerminal({ NO_COLOR: "1" });
    expect(plain.stdout).toMatch(/\r\x1b\[K\[release\] s-admin: follower; waiting/);
    expect(plain.stdout).not.toMatch(/\x1b\[3\dm/);
    command.open();
    expect((await leader.done).exitCode).toBe(0);
  });

  it("--json turns every message into one JSON event per line; --quiet keeps only warnings and errors", async () => {
    const command = gate();
    const leader = startCli(["run", "--json", "--release-id", "js-1", "--", ...command.command], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" },
    });
    await waitForRunningAttempt(db(), "js-1");
    const waiting = startCli(["run", "--role", "follower", "--release-id", "js-1"], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "s-admin", RELEASE_JSON: "true" },
    });
    await waitForStderr(waiting.process, /"event":"waiting"/);
    command.open();
    const follower = await waiting.done;
    const lead = await leader.done;
    const events = (text: string) =>
      text
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map(
          (l) =>
            JSON.parse(l) as { event: string; level: string; app: string; release: string; attempt: number },
        );
    expect(
      lead.stderr
        .trim()
        .split("\n")
        .every((l) => l.startsWith("{")),
    ).toBe(true);
    expect(events(lead.stderr).map((e) => e.event)).toEqual(["running", "ran"]);
    expect(events(follower.stderr).map((e) => e.event)).toEqual(["waiting", "leader-succeeded"]);
    expect(events(follower.stderr)[1]).toMatchObject({
      level: "info",
      app: "s-admin",
      release: "js-1",
      role: "follower",
      exitCode: 0,
    });
    const quiet = await runCli(["run", "--quiet", "--", "true"], {
      env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "q" },
    });
    expect(quiet.exitCode).toBe(0);
    expect(quiet.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^\[release\] q: warning: No release id found/),
    ]);
    const jsonError = await runCli(["run", "--json", "--role", "boss", "--", "true"], { env: {} });
    expect(jsonError.exitCode).toBe(64);
    expect(JSON.parse(jsonError.stderr.split("\n")[0]!)).toMatchObject({
      level: "error",
      event: "error",
      exitCode: 64,
    });
  });
});
