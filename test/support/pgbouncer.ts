// A real PgBouncer in front of a test database, in transaction or session mode with a given pool size.
// Tests and benchmarks use it to show what a pooled URL (Heroku, Supabase, Neon) does to ownership.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "../../demo/free-port.js";

export const PGBOUNCER = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((p) => existsSync(p));

export interface Bouncer {
  /** The database URL through the pooler. */
  url: string;
  stop(): void;
}

/** Starts PgBouncer in front of `directUrl`; resolves once it answers a query. */
export async function startBouncer(
  directUrl: string,
  options: { poolMode: "transaction" | "session"; poolSize: number },
): Promise<Bouncer> {
  if (PGBOUNCER === undefined)
    throw new Error("pgbouncer is not installed: apt-get install pgbouncer (.ci/run installs it)");
  const direct = new URL(directUrl);
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
pool_mode = ${options.poolMode}
default_pool_size = ${options.poolSize}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = ${join(dir, "pgbouncer.log")}
pidfile = ${join(dir, "pgbouncer.pid")}
`,
  );
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    // PgBouncer refuses to run as root: it switches to the postgres user (-u), which must read its files.
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    for (const file of ["", "userlist.txt", "pgbouncer.ini"]) chownSync(join(dir, file), uid, gid);
    chmodSync(dir, 0o700);
  }
  const child: ChildProcess = spawn(
    PGBOUNCER,
    [...(asRoot ? ["-u", "postgres"] : []), join(dir, "pgbouncer.ini")],
    {
      stdio: "ignore",
    },
  );
  const url = new URL(directUrl);
  url.port = String(port);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 1000 });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      break;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`pgbouncer did not start: ${(error as Error).message}`);
      await sleep(100);
    }
  }
  return { url: url.toString(), stop: () => child.kill("SIGTERM") };
}
