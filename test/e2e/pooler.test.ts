// Poolers: a lock taken through PgBouncer in transaction mode protects nothing (session advisory locks
// leak between clients). It is detected at run time, not from the URL, and refused with 78 and the fix;
// RELEASE_DATABASE_URL lets the lock use a direct connection while the command keeps the pooled one.
// Session mode behaves like a direct connection and is accepted.

import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { BUMP, runCli, sleep } from "../support/cli.js";
import { requireTool } from "../support/tools.js";

// Every test here goes through PgBouncer: without it (outside CI) they are skipped, saying how to install it.
const PGBOUNCER = requireTool("pgbouncer").path;
const db = useTestDatabase("pooler");
const password = inject("pgPassword");
const bouncers: ChildProcess[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** Starts PgBouncer in front of the test server; returns the URL of the test database through it. */
async function startBouncer(poolMode: "transaction" | "session"): Promise<string> {
  if (PGBOUNCER === undefined) throw new Error("startBouncer needs pgbouncer (see requireTool above)");
  const direct = new URL(db().url);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "ro-bouncer-"));
  const user = decodeURIComponent(direct.username);
  writeFileSync(join(dir, "userlist.txt"), `"${user}" "${decodeURIComponent(direct.password)}"\n`);
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    `[databases]
* = host=${direct.hostname} port=${direct.port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${join(dir, "userlist.txt")}
pool_mode = ${poolMode}
default_pool_size = 4
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
logfile = ${join(dir, "pgbouncer.log")}
pidfile = ${join(dir, "pgbouncer.pid")}
`,
  );
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    // PgBouncer refuses to run as root: it switches to the postgres user (-u), which must read its files.
    const pw = await import("node:child_process").then((cp) =>
      cp.execFileSync("id", ["-u", "postgres"]).toString().trim(),
    );
    const gid = await import("node:child_process").then((cp) =>
      cp.execFileSync("id", ["-g", "postgres"]).toString().trim(),
    );
    for (const file of ["", "userlist.txt", "pgbouncer.ini"])
      chownSync(join(dir, file), Number(pw), Number(gid));
    chmodSync(dir, 0o700);
  }
  const child = spawn(PGBOUNCER, [...(asRoot ? ["-u", "postgres"] : []), join(dir, "pgbouncer.ini")], {
    stdio: "ignore",
  });
  bouncers.push(child);
  const url = new URL(db().url);
  url.port = String(port);
  for (let i = 0; i < 100; i++) {
    const probe = await runCli(["doctor", "--connect-timeout", "200ms"], {
      env: { DATABASE_URL: url.toString(), RELEASE_ID: "x" },
    });
    if (!/Nothing accepted connections/.test(probe.stdout)) return url.toString();
    await sleep(100);
  }
  throw new Error("pgbouncer did not start");
}

let transactionUrl: string;
let sessionUrl: string;
beforeAll(async () => {
  if (PGBOUNCER === undefined) return;
  transactionUrl = await startBouncer("transaction");
  sessionUrl = await startBouncer("session");
}, 60_000);
afterAll(() => {
  for (const child of bouncers) child.kill("SIGTERM");
});

const MARKER = "COMMAND-RAN";
const attempts = () =>
  db()
    .query("SELECT id FROM release_orchestrator.attempts")
    .catch(() => []);

describe("poolers", () => {
  it("refuses a lock taken through PgBouncer in transaction mode: 78, the fix, nothing run", async () => {
    const run = await runCli(["run", "--release-id", "pool-1", "--", "sh", "-c", `echo ${MARKER}`], {
      env: { DATABASE_URL: transactionUrl, RELEASE_APP_NAME: "s-app" },
    });
    expect(run.exitCode, run.stderr).toBe(78);
    expect(run.stderr).toMatch(
      /goes through a transaction-mode pooler \(such as PgBouncer\); point RELEASE_DATABASE_URL at the direct database URL\./,
    );
    expect(run.stdout).not.toContain(MARKER);
    expect(await attempts()).toEqual([]);
    // Nothing left behind: the lock does not stay with a pooled server connection.
    expect(
      await db().query(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      ),
    ).toEqual([]);
    expect(run.stdout + run.stderr).not.toContain(password);
  });

  it("doctor finds the transaction-mode pooler at run time (the URL looks direct) and exits 78", async () => {
    const run = await runCli(["doctor", "--release-id", "pool-2"], { env: { DATABASE_URL: transactionUrl } });
    expect(run.exitCode).toBe(78);
    expect(run.stdout).toMatch(/^FAIL {2}pooler: The advisory lock did not stay with this session/m);
  });

  it("with RELEASE_DATABASE_URL direct, the lock is safe and the command keeps the pooled DATABASE_URL", async () => {
    const port = new URL(transactionUrl).port;
    const run = await runCli(
      [
        "run",
        "--release-id",
        "pool-3",
        "--",
        "sh",
        "-c",
        `case "$DATABASE_URL" in *:${port}/*) echo pooled;; esac; exec "$0" "$@"`,
        process.execPath,
        BUMP,
      ],
      { env: { DATABASE_URL: transactionUrl, RELEASE_DATABASE_URL: db().url, RELEASE_APP_NAME: "s-app" } },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain("pooled\n");
    expect(await db().query("SELECT app FROM counter")).toEqual([{ app: "s-app" }]);
  });

  it("accepts PgBouncer in session mode, where a session keeps its lock", async () => {
    const run = await runCli(["run", "--release-id", "pool-4", "--", "true"], {
      env: { DATABASE_URL: sessionUrl },
    });
    expect(run.exitCode, run.stderr).toBe(0);
  });
});
