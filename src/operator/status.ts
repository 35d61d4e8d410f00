// Operator commands that only read: `status` (who holds the release now), `history` (what happened),
// `doctor` (is this setup safe, and what to fix). Each returns plain data; formatting is separate.

import type pg from "pg";
import { parseDatabaseUrl, passwordOf, type Config, type Environment } from "../core/config.js";
import { applicationName, connect, connectionSettings, describeTarget } from "../db/connect.js";
import { ReleaseError } from "../core/errors.js";
import { formatDuration } from "../core/duration.js";
import { describeBlock } from "../core/blocking.js";
import {
  readAttempts,
  readWaiters,
  type AttemptRecord,
  type FollowerOutcomeRow,
  type HistoryFilter,
} from "../db/ledger/reads.js";
import { provesOwnSession, readLeakedLocks, readLockHolder, type LockHolder } from "../db/session.js";
import { deriveLockKey, type LockKey } from "../core/lock-key.js";
import { resolveReleaseId } from "../load/release-id.js";
import { leaseFor } from "../run/ownership.js";
import { isDistinctive } from "../core/secrets.js";

/** A client with the settings every command shares (connectionSettings), ended when `fn` settles. */
export async function withClient<T>(
  config: Config,
  role: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect({ ...connectionSettings(config), applicationName: applicationName([role]) });
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------- status

export interface StatusReport {
  lock: { name: string; key: LockKey; holder: LockHolder | null };
  running: (AttemptRecord & { heartbeatAgeMs: number })[];
  /** Processes recorded as waiting: "waiting" (heartbeat fresh) or "gone" (killed, or lost their connection). */
  waiters: FollowerOutcomeRow[];
  latest: AttemptRecord[];
  ledger: { schema: string; exists: boolean };
  now: string;
}

export async function readStatus(client: pg.Client, config: Config, limit = 10): Promise<StatusReport> {
  const key = deriveLockKey(config.lockName);
  const holder = (await readLockHolder(client, key)) ?? null;
  const exists = await client.query<{ exists: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = 'attempts') AS exists`,
    [config.schema],
  );
  const now =
    (await client.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows[0]?.now ?? new Date();
  const recent = await readAttempts(client, config.schema, { limit: 200, includeOutput: false });
  const waiters = await readWaiters(client, config.schema);
  const running = recent
    .filter((a) => a.status === "running")
    .map((a) => ({ ...a, heartbeatAgeMs: now.getTime() - Date.parse(a.heartbeatAt) }));
  const seen = new Set<string>();
  const latest: AttemptRecord[] = [];
  for (const attempt of recent) {
    const release = `${attempt.releaseId ?? ""}\u0000${attempt.task}`;
    if (seen.has(release)) continue;
    seen.add(release);
    latest.push(attempt);
    if (latest.length >= limit) break;
  }
  return {
    lock: { name: config.lockName, key, holder },
    running,
    waiters,
    latest,
    ledger: { schema: config.schema, exists: exists.rows[0]?.exists === true },
    now: now.toISOString(),
  };
}

const time = (iso: string | null) => (iso === null ? "-" : iso.replace("T", " ").slice(0, 19));
const ago = (now: string, iso: string) => formatDuration(Math.max(0, Date.parse(now) - Date.parse(iso)));

/** An attempt's cells, as the status and history tables show them. */
function cells(a: AttemptRecord) {
  return {
    id: `#${a.id}`,
    release: a.releaseId ?? "(unversioned)",
    task: a.task,
    app: a.app,
    role: a.role,
    status: a.status,
    exit: a.exitCode === null ? (a.signal ?? "-") : String(a.exitCode),
    started: time(a.startedAt),
    duration: a.durationMs === null ? "-" : formatDuration(a.durationMs),
  };
}

/** A plain table: columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** What the lease of a running attempt says: still owned, or its leader is gone. */
function leaseNote(now: string, a: AttemptRecord): string {
  if (a.leaseEndsAt === null) return ".";
  const left = Date.parse(a.leaseEndsAt) - Date.parse(now);
  return left > 0
    ? `, lease ends in ${formatDuration(left)} unless renewed${a.lockBackendPid === null ? "" : ` (advisory lock on backend pid ${a.lockBackendPid})`}.`
    : ` — its lease expired ${formatDuration(-left)} ago: its leader is gone, and the next run takes over once its command's sessions have left.`;
}

export function formatStatus(report: StatusReport): string {
  const out: string[] = [];
  const { holder } = report.lock;
  const key = `${report.lock.key.namespace}, ${report.lock.key.key}`;
  if (holder === null) {
    out.push(`Lock "${report.lock.name}" (key ${key}): free.`);
  } else {
    out.push(
      `Lock "${report.lock.name}" (key ${key}): held by backend pid ${holder.pid}` +
        (holder.applicationName ? ` (${holder.applicationName})` : "") +
        (holder.state ? `, ${holder.state}` : "") +
        (holder.backendStart
          ? `, connected since ${time(holder.backendStart)} (${ago(report.now, holder.backendStart)})`
          : "") +
        (holder.clientAddr ? `, from ${holder.clientAddr}` : "") +
        ".",
    );
  }
  if (!report.ledger.exists) {
    out.push(`No ledger yet (schema ${report.ledger.schema}): nothing has run here.`);
    return out.join("\n");
  }
  for (const a of report.running) {
    out.push(
      `Running: attempt #${a.id} by ${a.app} (${a.role}, pid ${a.pid} on ${a.host}) of ${a.task} for ${a.releaseId ?? "(unversioned)"}, ` +
        `since ${time(a.startedAt)} (${ago(report.now, a.startedAt)}), lease renewed ${formatDuration(a.heartbeatAgeMs)} ago` +
        leaseNote(report.now, a),
    );
    if (a.blocked !== null) out.push(`  Blocked: ${describeBlock(a.blocked, report.now)}`);
  }
  if (report.running.length === 0) out.push("Running: nothing.");
  out.push(...formatWaiters(report));
  out.push("", "Latest attempts:");
  out.push(
    table(
      ["RELEASE", "TASK", "ATTEMPT", "APP", "ROLE", "STATUS", "EXIT", "STARTED", "DURATION", "WAITERS"],
      report.latest.map((a) => {
        const c = cells(a);
        return [
          c.release,
          c.task,
          c.id,
          c.app,
          c.role,
          c.status,
          c.exit,
          c.started,
          c.duration,
          String(a.followers.length),
        ];
      }),
    ),
  );
  return out.join("\n");
}

/** Who waits now, for whom and since when; and the waiters that stopped beating (gone). */
function formatWaiters(report: StatusReport): string[] {
  if (report.waiters.length === 0) return ["Waiting: nobody."];
  const live = report.waiters.filter((w) => w.outcome === "waiting").length;
  const gone = report.waiters.length - live;
  const lines = [
    `Waiting: ${live === 1 ? "1 process" : `${live} processes`}${gone === 0 ? "" : ` (and ${gone} gone)`}.`,
  ];
  for (const w of report.waiters) {
    const who = `${w.app} (${w.role}${w.role === "leader" ? "" : `, ${w.mode} mode`}, pid ${w.pid} on ${w.host})`;
    const forWhat = `${w.attemptId === null ? "a leader" : `attempt #${w.attemptId}`} of ${w.task} for ${w.releaseId ?? "(unversioned)"}`;
    const start = w.startedAt === null ? "" : ` since ${time(w.startedAt)}`;
    lines.push(
      w.outcome === "waiting"
        ? `  ${who} waits for ${forWhat}${start} (${formatDuration(w.waitedMs)}).`
        : `  ${who} is gone: no heartbeat since ${time(w.recordedAt)} (${ago(report.now, w.recordedAt)} ago), after waiting ${formatDuration(w.waitedMs)} for ${forWhat}; it was killed or lost its database connection.`,
    );
  }
  return lines;
}

// --------------------------------------------------------------------------------------------- history

export function formatHistory(attempts: AttemptRecord[]): string {
  if (attempts.length === 0) return "No attempts recorded.";
  const rows: string[][] = [];
  for (const a of attempts) {
    const c = cells(a);
    rows.push([c.id, c.release, c.task, c.app, c.role, c.status, c.exit, c.started, c.duration]);
    for (const f of a.followers) {
      rows.push([
        "",
        "",
        "",
        `↳ ${f.app}`,
        f.role,
        f.outcome,
        f.exitCode === null ? "-" : String(f.exitCode),
        time(f.recordedAt),
        `waited ${formatDuration(f.waitedMs)}`,
      ]);
    }
  }
  return table(["ATTEMPT", "RELEASE", "TASK", "APP", "ROLE", "STATUS", "EXIT", "AT", "DURATION"], rows);
}

export async function readHistory(
  client: pg.Client,
  config: Config,
  filter: HistoryFilter,
): Promise<AttemptRecord[]> {
  return readAttempts(client, config.schema, { includeOutput: false, ...filter });
}

// ---------------------------------------------------------------------------------------------- doctor

export type Verdict = "pass" | "warn" | "fail";
export interface Finding {
  check: string;
  verdict: Verdict;
  /** One sentence: what was found. */
  message: string;
  /** One sentence: what to do; present for warn and fail. */
  fix?: string;
}

export const WEAK_PASSWORD =
  "The database password is short or a plain word (under 8 characters, or only letters and under 16): it is masked in URLs and password= settings, but not in free text, where it cannot be told from ordinary words.";

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]", ""]);

/** Checks the setup: configuration, release id, connection, pooler, TLS, privileges, version, lock. */
export async function runDoctor(config: Config, env: Environment, cwd: string): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (check: string, verdict: Verdict, message: string, fix?: string) =>
    findings.push(fix === undefined ? { check, verdict, message } : { check, verdict, message, fix });

  // Roles
  const legacy = env.RUN_MIGRATIONS;
  if (config.role === "follower" && config.followerMode === "skip") {
    add(
      "role",
      "warn",
      `Role follower in skip mode (from ${config.roleSource}): this app exits at once and may boot before the schema is migrated.`,
      "Use --follower-mode wait unless this app does not depend on the migration.",
    );
  } else if (
    legacy !== undefined &&
    legacy !== "" &&
    env.RELEASE_ROLE !== undefined &&
    env.RELEASE_ROLE !== ""
  ) {
    add("role", "pass", `Role ${config.role}: RELEASE_ROLE and RUN_MIGRATIONS agree.`);
  } else {
    add(
      "role",
      "pass",
      `Role ${config.role} (from ${config.roleSource}), follower mode ${config.followerMode}.`,
    );
  }

  // Release id
  try {
    const release = await resolveReleaseId(config, env, cwd);
    if (release === undefined) {
      add(
        "release id",
        config.role === "follower" && config.followerMode === "wait" ? "fail" : "warn",
        "No release id found: runs are unversioned, so every process runs the command in turn.",
        "Set RELEASE_ID, stamp a .release-id file at build time, or pass --fingerprint db/migrate.",
      );
    } else {
      add("release id", "pass", `Release id ${release.id} (from ${release.source}).`);
    }
  } catch (error) {
    add("release id", "fail", (error as Error).message);
  }

  // A password too plain to be told from ordinary words is masked only where it stands as a value.
  const password = passwordOf(config.databaseUrl);
  if (password !== undefined && !isDistinctive(password)) {
    add("password", "warn", WEAK_PASSWORD, "Use a random password of 16 characters or more.");
  }
  const url = config.databaseUrl ?? "";
  const parsed = parseDatabaseUrl(url);

  // Connection and everything that needs it
  // The very settings run uses (PGSSLMODE from .env included), for the client and for the probe.
  let client: pg.Client | undefined;
  try {
    client = await connect({ ...connectionSettings(config), applicationName: applicationName(["doctor"]) });
  } catch (error) {
    add(
      "connection",
      "fail",
      error instanceof ReleaseError ? error.message : String(error),
      "Fix the database URL or the network, then run doctor again.",
    );
    return findings;
  }
  try {
    const info = (
      await client.query<{ version: string; num: number; user: string; db: string; ssl: boolean | null }>(
        `SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
                current_user AS user, current_database() AS db,
                (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl`,
      )
    ).rows[0];
    if (info === undefined) throw new Error("no answer");
    add("connection", "pass", `Connected to ${describeTarget(url)} as ${info.user}.`);
    add(
      "server version",
      info.num >= 120000 ? "pass" : info.num >= 90600 ? "warn" : "fail",
      `PostgreSQL ${info.version}.`,
      info.num >= 120000 ? undefined : "Upgrade PostgreSQL: release-orchestrator is tested on 12 and later.",
    );

    const host = parsed?.host ?? "";
    const sslmode = parsed?.url.searchParams.get("sslmode") ?? config.sslMode;
    if (info.ssl === true) {
      add("tls", "pass", `The connection is encrypted (TLS)${sslmode ? `, sslmode=${sslmode}` : ""}.`);
    } else if (LOCAL_HOSTS.has(host) || host.startsWith("/")) {
      add("tls", "pass", "The connection is local and not encrypted, which is fine on this machine.");
    } else {
      add(
        "tls",
        "warn",
        `The connection to ${host} is not encrypted.`,
        "Add sslmode=require to the database URL (on Heroku, node-postgres needs sslmode=no-verify or PGSSLMODE=no-verify, because Heroku's certificates are not signed by a public authority).",
      );
    }

    const ledger = await client.query<{
      exists: boolean;
      can_create: boolean;
      schema_exists: boolean;
      usable: boolean | null;
    }>(
      `SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'attempts') AS exists,
              has_database_privilege(current_user, current_database(), 'CREATE') AS can_create,
              n.oid IS NOT NULL AS schema_exists, has_schema_privilege(n.oid, 'USAGE') AS usable
         FROM (SELECT $1::text AS name) q LEFT JOIN pg_namespace n ON n.nspname = q.name`,
      [config.schema],
    );
    const row = ledger.rows[0];
    if (row?.usable === false)
      add(
        "ledger",
        "fail",
        `This user may not use the ledger schema ${config.schema}.`,
        `Grant it once as the schema's owner (GRANT USAGE, CREATE ON SCHEMA ${config.schema} TO ${info.user}, and privileges on its tables), or pass --schema with another name.`,
      );
    else if (row?.exists === true) add("ledger", "pass", `The ledger exists in schema ${config.schema}.`);
    else if (row?.can_create === true || row?.schema_exists === true)
      add(
        "ledger",
        "pass",
        `The ledger schema ${config.schema} does not exist yet; this user may create it on the first run.`,
      );
    else
      add(
        "ledger",
        "fail",
        `This user may not create the ledger schema ${config.schema}.`,
        `Create it once as an owner (CREATE SCHEMA ${config.schema} AUTHORIZATION ${info.user}) or grant CREATE on the database.`,
      );

    const recovery = (
      await client.query<{ read_only: boolean }>(
        "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only",
      )
    ).rows[0];
    if (recovery?.read_only === true)
      add(
        "primary",
        "fail",
        "The server is read-only (a standby or a read-only session): no attempt can be recorded there.",
        "Point DATABASE_URL or RELEASE_DATABASE_URL at the primary.",
      );

    // The session: proven its own (no pooler, proxy or NAT in between), or not; both are safe.
    if (await provesOwnSession(client)) {
      add(
        "session",
        "pass",
        "The connection is a session of its own (no pooler in between): waiters wake at once on NOTIFY, and a leader's lost session is seen at once through its advisory lock.",
      );
    } else {
      add(
        "session",
        "pass",
        `The connection goes through a pooler, proxy or NAT (the server does not see this connection as its client): the ledger's lease alone decides ownership, which is safe; waiters poll (an outcome is seen within 1 s) and a dead leader is taken over when its lease ends (${formatDuration(leaseFor(config.killGraceMs))} after its last renewal).`,
        "For instant wake-up, set RELEASE_DATABASE_URL to the direct database URL (the command keeps DATABASE_URL).",
      );
    }

    const key = deriveLockKey(config.lockName);
    const leaked = await readLeakedLocks(client, key, config.schema);
    for (const holder of leaked) {
      add(
        "lock leak",
        "warn",
        `Backend pid ${holder.pid}${holder.applicationName ? ` (${holder.applicationName})` : ""}${holder.state ? `, ${holder.state}` : ""}${holder.clientAddr ? `, from ${holder.clientAddr}` : ""} holds the advisory lock "${config.lockName}" (key ${key.namespace}, ${key.key}) with no running attempt: a lock left on a pooled server connection (0.1.0 through a transaction-mode pooler) or a lingering session. It blocks nothing (the ledger decides), but status shows it.`,
        `End it: SELECT pg_terminate_backend(${holder.pid}); (behind PgBouncer, RECONNECT in its admin console also works).`,
      );
    }
    if (leaked.length === 0) {
      const holder = await readLockHolder(client, key);
      add(
        "lock",
        "pass",
        holder === undefined
          ? `Lock "${config.lockName}" (key ${key.namespace}, ${key.key}) is free.`
          : `Lock "${config.lockName}" (key ${key.namespace}, ${key.key}) is held by a running attempt's leader (backend pid ${holder.pid}).`,
      );
    }
  } finally {
    await client.end().catch(() => {});
  }
  return findings;
}

export function formatFindings(findings: Finding[]): string {
  const tag: Record<Verdict, string> = { pass: "PASS", warn: "WARN", fail: "FAIL" };
  return findings
    .map((f) => `${tag[f.verdict]}  ${f.check}: ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ""}`)
    .join("\n");
}
