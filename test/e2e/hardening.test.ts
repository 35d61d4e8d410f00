// Issue 13, process level: the password in every spelling (a real role whose password needs encoding),
// a full server's exit-69 advice, a closed stdout/stderr, generic environments, complete --json,
// doctor with .env's PGSSLMODE, and socket URLs. Each runs the built CLI against the harness server.

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { CLI, cleanEnv, runCli, scratchDir, sleep, startCli } from "../support/cli.js";

const db = useTestDatabase("hardening");

const suffix = () => randomBytes(4).toString("hex");

/** A login role with this password, allowed to create its own ledger schema; its URL as given. */
async function createRole(
  password: string,
  writtenPassword: string,
  extra = "",
): Promise<{ name: string; url: string }> {
  const name = `h_${suffix()}`;
  await db().query(`CREATE ROLE ${name} LOGIN PASSWORD '${password.replace(/'/g, "''")}' ${extra}`);
  const base = new URL(db().url);
  await db().query(`GRANT CONNECT, CREATE ON DATABASE "${base.pathname.slice(1)}" TO ${name}`);
  const url = `postgres://${name}:${writtenPassword}@${base.host}${base.pathname}`;
  return { name, url };
}

const ledger = <T>(schema: string, where = "true") =>
  db().query<T>(`SELECT * FROM ${schema}.attempts WHERE ${where} ORDER BY id`);

describe("the password in every spelling", () => {
  it("never shows p@ss/w%rd, written p%40ss%2fw%25rd, in output, JSON events, ledger columns or history", async () => {
    const password = "p@ss/w%rd";
    const written = "p%40ss%2fw%25rd";
    const { url } = await createRole(password, written);
    const schema = `leaky_${suffix()}`;
    // The command holds the password in the command text too: as an argument and quoted in a script.
    const command = [
      "sh",
      "-c",
      `echo "url $DATABASE_URL"; echo 'raw p@ss/w%rd'; echo "upper p%40ss%2Fw%25rd"; echo "json {\\"pw\\":\\"$1\\"}"`,
      "sh",
      password,
    ];
    const env = { DATABASE_URL: url, RELEASE_ID: `leak-${suffix()}`, RELEASE_SCHEMA: schema };
    const plain = await runCli(["run", "--", ...command], { env });
    const json = await runCli(["run", "--json", "--role", "leader", "--", ...command], {
      env: { ...env, RELEASE_ID: `leak-${suffix()}` },
    });
    const history = await runCli(["history", "--json"], { env });
    const status = await runCli(["status"], { env });
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(history.exitCode, history.stderr).toBe(0);
    expect(status.exitCode, status.stderr).toBe(0);
    // The command's own output streams through to the terminal unchanged (its stdout is its business);
    // everything the orchestrator writes, records or serves is masked.
    expect(plain.stdout).toContain("url postgres://");

    const rows = await ledger<Record<string, unknown>>(schema);
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.status)).toEqual(["succeeded", "succeeded"]);
    const recorded = JSON.stringify(rows);
    expect(String(rows[0]?.output_tail)).toContain("upper *****");
    expect(String(rows[0]?.output_tail)).toContain("raw *****");
    const texts = [plain.stderr, json.stderr, history.stdout, status.stdout, recorded];
    const spellings = [
      password,
      written,
      "p%40ss%2Fw%25rd",
      encodeURIComponent(password),
      "p@ss\\/w%rd",
      "%40ss",
    ];
    for (const text of texts) for (const spelling of spellings) expect(text).not.toContain(spelling);
    for (const line of json.stderr.trim().split("\n"))
      expect(() => JSON.parse(line) as unknown).not.toThrow();
  });
  it("serves no spelling of Secret!Pass (written Secret%21Pass) from /api/releases, even one recorded unmasked", async () => {
    const { url } = await createRole("Secret!Pass", "Secret%21Pass");
    const schema = `served_${suffix()}`;
    const releaseId = `serve-${suffix()}`;
    const env = { DATABASE_URL: url, RELEASE_SCHEMA: schema };
    const ran = await runCli(["run", "--release-id", releaseId, "--", "true"], { env });
    expect(ran.exitCode, ran.stderr).toBe(0);
    // As an older version recorded it: the spellings in the command and the output tail, unmasked.
    await db().query(`UPDATE ${schema}.attempts SET command = $1, output_tail = $2 WHERE release_id = $3`, [
      `psql ${url}`,
      `Secret%21Pass Secret!Pass "Secret%21Pass" Secret%21%50ass %53ecret%21Pass`,
      releaseId,
    ]);
    const port = await new Promise<number>((resolve, reject) => {
      const probe = createServer();
      probe.once("error", reject);
      probe.listen(0, "127.0.0.1", () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const served = startCli(["serve", "--port", String(port), "--host", "127.0.0.1"], {
      env,
      timeoutMs: 60_000,
    });
    try {
      let body: string | undefined;
      const end = Date.now() + 20_000;
      while (body === undefined) {
        body = await fetch(`http://127.0.0.1:${port}/api/releases`)
          .then((response) => (response.ok ? response.text() : undefined))
          .catch(() => undefined);
        if (body === undefined && Date.now() > end) throw new Error("serve did not answer within 20 s");
        if (body === undefined) await sleep(50);
      }
      expect(body).toContain(releaseId);
      expect(body).toContain("*****");
      for (const spelling of ["Secret!Pass", "Secret%21Pass", "%50ass", "%53ecret"]) {
        expect(body).not.toContain(spelling);
      }
    } finally {
      served.process.kill("SIGTERM");
      await served.done;
    }
  });

  it("leaves ordinary words alone with a plain-word password, masks it as a value, and says so", async () => {
    const { url } = await createRole("migrate", "migrate");
    const schema = `plain_${suffix()}`;
    const env = { DATABASE_URL: url, RELEASE_SCHEMA: schema, RELEASE_ID: `plain-${suffix()}` };
    const run = await runCli(
      ["run", "--", "sh", "-c", 'echo "running migrate for release"; echo "$DATABASE_URL"'],
      {
        env,
      },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/warning: the database password is short or a plain word/);
    expect(run.stderr).toMatch(/running migrate for release/);
    const [row] = await ledger<{ output_tail: string }>(schema);
    expect(row?.output_tail).toContain("running migrate for release");
    expect(row?.output_tail).toMatch(/postgres:\/\/h_[0-9a-f]+:\*\*\*\*\*@/);
    const doctor = await runCli(["doctor"], { env });
    expect(doctor.stdout).toMatch(/WARN\s+password: The database password is short or a plain word/);
  });
});

describe("a server that is full", () => {
  it("exits 69 after retrying within --wait-timeout, and says so in its advice", async () => {
    const password = `crowd-${suffix()}-pw`;
    const { name, url } = await createRole(password, password, "CONNECTION LIMIT 1");
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      const run = await runCli(["run", "--connect-timeout", "1s", "--wait-timeout", "3s", "--", "true"], {
        env: { DATABASE_URL: url, RELEASE_ID: `crowd-${suffix()}` },
      });
      expect(run.exitCode, run.stderr).toBe(69);
      expect(run.stderr).toMatch(
        new RegExp(
          `too many connections for role "${name}".*as long as --wait-timeout allows.*raise --wait-timeout`,
        ),
      );
      expect(run.stderr).not.toMatch(/raise max_connections or --connect-timeout/);
      const status = await runCli(["status", "--connect-timeout", "1s"], { env: { DATABASE_URL: url } });
      expect(status.exitCode, status.stderr).toBe(69);
      expect(status.stderr).toMatch(/as long as --connect-timeout allows.*raise --connect-timeout/);
    } finally {
      await holder.end();
    }
  });
});

describe("a closed stdout or stderr", () => {
  for (const closed of [["stdout"], ["stdout", "stderr"]]) {
    it(`does not end supervision (${closed.join(" and ")} closed): the command finishes and the ledger records it`, async () => {
      const cwd = scratchDir();
      const flag = join(cwd, "go");
      const releaseId = `pipe-${suffix()}`;
      // Prints a line, waits until the reader has gone, then prints a lot more (each write now fails).
      const script = `echo first; while [ ! -e ${flag} ]; do sleep 0.05; done; i=0; while [ $i -lt 3000 ]; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done; echo last`;
      const child = spawn(process.execPath, [CLI, "run", "--", "sh", "-c", script], {
        cwd,
        env: cleanEnv({ DATABASE_URL: db().url, RELEASE_ID: releaseId }),
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      if (!closed.includes("stderr"))
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the command printed nothing within 20 s")), 20_000);
        child.stdout.once("data", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      child.stdout.destroy();
      if (closed.includes("stderr")) child.stderr.destroy();
      writeFileSync(flag, "");
      const code = await Promise.race([
        exited,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("the orchestrator did not exit within 40 s")), 40_000),
        ),
      ]);
      expect(code, stderr).toBe(0);
      expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
      const rows = await ledger<{ status: string; exit_code: number; output_tail: string }>(
        "release_orchestrator",
        `release_id = '${releaseId}'`,
      );
      expect(rows.map((r) => [r.status, r.exit_code])).toEqual([["succeeded", 0]]);
      expect(rows[0]?.output_tail).toContain("line 2999");
      expect(rows[0]?.output_tail).toContain("\nlast\n"); // stdout and stderr interleave: not necessarily at the end
    });
  }
});

describe("generic environments", () => {
  it("runs with APP_NAME='Acme Store' and a PORT that is no number, and records the name safely", async () => {
    const releaseId = `generic-${suffix()}`;
    const run = await runCli(["run", "--", "true"], {
      env: { DATABASE_URL: db().url, RELEASE_ID: releaseId, APP_NAME: "Acme Store", PORT: "http" },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toContain("[release] Acme Store: ");
    const evil = await runCli(["run", "--role", "follower", "--follower-mode", "skip"], {
      env: {
        DATABASE_URL: db().url,
        RELEASE_ID: releaseId,
        APP_NAME: "Boutique\u001b[2J été\r\n",
        PORT: "x",
      },
    });
    expect(evil.exitCode, evil.stderr).toBe(0);
    expect(evil.stderr).not.toContain("\u001b[2J");
    const apps = await db().query<{ app: string }>(
      "SELECT app FROM release_orchestrator.attempts WHERE release_id = $1",
      [releaseId],
    );
    expect(apps.map((a) => a.app)).toEqual(["Acme Store"]);
  });
});

describe("--json", () => {
  it("makes every line an event with its fields, warnings included", async () => {
    const releaseId = `json-${suffix()}`;
    const run = await runCli(["run", "--json", "--role", "leader", "--", "true"], {
      env: {
        DATABASE_URL: db().url,
        RELEASE_ID: releaseId,
        RUN_MIGRATIONS: "false",
        RELEASE_APP_NAME: "s-app",
      },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const events = run.stderr
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.some((e) => e.level === "warn" && e.event === "warning")).toBe(true);
    for (const event of events) {
      expect(typeof event.event, JSON.stringify(event)).toBe("string");
      expect(event).toMatchObject({ app: "s-app", role: "leader", task: "migrate", release: releaseId });
    }
  });

  it("reports usage errors under RELEASE_JSON=true as JSON events too", async () => {
    for (const args of [
      ["run", "--role", "boss", "--", "true"],
      ["run", "--bogus", "--", "true"],
      ["status", "--wait-timeout", "-5s"],
    ]) {
      const run = await runCli(args, { env: { DATABASE_URL: db().url, RELEASE_JSON: "true" } });
      expect(run.exitCode, run.stderr).toBe(64);
      for (const line of run.stderr.trim().split("\n")) {
        expect(JSON.parse(line) as unknown).toMatchObject({ level: "error", event: "error", exitCode: 64 });
      }
    }
  });
});

describe("doctor", () => {
  it("uses the connection settings run uses: PGSSLMODE from .env included", async () => {
    const cwd = scratchDir();
    writeFileSync(join(cwd, ".env"), "PGSSLMODE=require\n");
    const env = { DATABASE_URL: db().url, RELEASE_ID: `ssl-${suffix()}` };
    const doctor = await runCli(["doctor"], { cwd, env });
    const run = await runCli(["run", "--connect-timeout", "1s", "--", "true"], { cwd, env });
    expect(run.exitCode, run.stderr).toBe(69);
    expect(doctor.exitCode, doctor.stdout).toBe(78);
    expect(doctor.stdout).toMatch(/FAIL\s+connection: .*SSL/);
  });
});

describe("socket URLs", () => {
  it("names the socket path when nothing listens there, and accepts postgres://u@/db?host=<dir>", async () => {
    const missing = await runCli(["run", "--connect-timeout", "1s", "--", "true"], {
      env: { DATABASE_URL: "postgres://u@/db?host=/nonexistent/pg", RELEASE_ID: "sock-1" },
    });
    expect(missing.exitCode, missing.stderr).toBe(69);
    expect(missing.stderr).toContain("/nonexistent/pg/.s.PGSQL.5432");
    expect(missing.stderr).not.toMatch(/localhost|:5432/);

    const [dirs] = await db().query<{ unix_socket_directories: string }>("SHOW unix_socket_directories");
    const dir = dirs?.unix_socket_directories.split(",")[0]?.trim() ?? "";
    expect(dir, "the harness server listens on a Unix socket").toMatch(/^\//);
    const base = new URL(db().url);
    const port = base.port || "5432";
    const url = `postgres://${base.username}:${base.password}@${base.pathname}?host=${encodeURIComponent(dir)}&port=${port}`;
    const releaseId = `sock-${suffix()}`;
    const run = await runCli(["run", "--", "true"], { env: { DATABASE_URL: url, RELEASE_ID: releaseId } });
    expect(run.exitCode, run.stderr).toBe(0);
    const rows = await ledger<{ status: string }>("release_orchestrator", `release_id = '${releaseId}'`);
    expect(rows.map((r) => r.status)).toEqual(["succeeded"]);
  });
});
