// `doctor`'s checks, as data: each one a pure function of the probe (probe.ts) that returns its
// findings, or none when it does not apply. The list's order is the report's order.

import { parseDatabaseUrl } from "../../core/config.js";
import { formatDuration } from "../../core/duration.js";
import { deriveLockKey } from "../../core/lock-key.js";
import { describeStalled, leaseFor } from "../../core/ownership.js";
import { isDistinctive, passwordOf, WEAK_PASSWORD } from "../../core/secrets.js";
import { describeTarget } from "../../db/connect.js";
import { LEDGER_VERSION } from "../../db/ledger/create.js";
import type { Probe, ServerProbe } from "./probe.js";

export type Verdict = "pass" | "warn" | "fail";
export interface Finding {
  check: string;
  verdict: Verdict;
  /** One sentence: what was found. */
  message: string;
  /** One sentence: what to do; present for warn and fail. */
  fix?: string;
}

export interface Check {
  name: string;
  run(probe: Probe): Finding[];
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]", ""]);

const finding = (check: string, verdict: Verdict, message: string, fix?: string): Finding =>
  fix === undefined ? { check, verdict, message } : { check, verdict, message, fix };

/** A check of the server, which applies only once the connection worked. */
function serverCheck(name: string, run: (server: ServerProbe, probe: Probe) => Finding[]): Check {
  return { name, run: (probe) => ("error" in probe.server ? [] : run(probe.server, probe)) };
}

const role: Check = {
  name: "role",
  run: ({ config }) =>
    config.role === "follower" && config.followerMode === "skip"
      ? [
          finding(
            "role",
            "warn",
            `Role follower in skip mode (from ${config.roleSource}): this app exits at once and may boot before the schema is migrated.`,
            "Use --follower-mode wait unless this app does not depend on the migration.",
          ),
        ]
      : [
          finding(
            "role",
            "pass",
            `Role ${config.role} (from ${config.roleSource}), follower mode ${config.followerMode}.`,
          ),
        ],
};

const releaseId: Check = {
  name: "release id",
  run: ({ config, release }) => {
    if (release !== undefined && "error" in release) return [finding("release id", "fail", release.error)];
    if (release !== undefined)
      return [finding("release id", "pass", `Release id ${release.id} (from ${release.source}).`)];
    const waits = config.role === "follower" && config.followerMode === "wait";
    return [
      finding(
        "release id",
        waits ? "fail" : "warn",
        "No release id found: runs are unversioned, so every process runs the command in turn.",
        "Set RELEASE_ID, stamp a .release-id file at build time, or pass --fingerprint db/migrate.",
      ),
    ];
  },
};

/** A password too plain to be told from ordinary words is masked only where it stands as a value. */
const password: Check = {
  name: "password",
  run: ({ config }) => {
    const secret = passwordOf(config.databaseUrl);
    return secret !== undefined && !isDistinctive(secret)
      ? [
          finding(
            "password",
            "warn",
            `T${WEAK_PASSWORD.slice(1)}`,
            "Use a random password of 16 characters or more.",
          ),
        ]
      : [];
  },
};

const connection: Check = {
  name: "connection",
  run: ({ config, server }) =>
    "error" in server
      ? [
          finding(
            "connection",
            "fail",
            server.error,
            "Fix the database URL or the network, then run doctor again.",
          ),
        ]
      : [
          finding(
            "connection",
            "pass",
            `Connected to ${describeTarget(config.databaseUrl ?? "")} as ${server.user}.`,
          ),
        ],
};

const serverVersion = serverCheck("server version", (server) => [
  finding(
    "server version",
    server.versionNum >= 120000 ? "pass" : server.versionNum >= 90600 ? "warn" : "fail",
    `PostgreSQL ${server.version}.`,
    server.versionNum >= 120000
      ? undefined
      : "Upgrade PostgreSQL: release-orchestrator is tested on 12 and later.",
  ),
]);

const tls = serverCheck("tls", (server, { config }) => {
  const parsed = parseDatabaseUrl(config.databaseUrl ?? "");
  const host = parsed?.host ?? "";
  const sslmode = parsed?.url.searchParams.get("sslmode") ?? config.sslMode;
  if (server.ssl === true)
    return [
      finding("tls", "pass", `The connection is encrypted (TLS)${sslmode ? `, sslmode=${sslmode}` : ""}.`),
    ];
  if (LOCAL_HOSTS.has(host) || host.startsWith("/"))
    return [
      finding("tls", "pass", "The connection is local and not encrypted, which is fine on this machine."),
    ];
  return [
    finding(
      "tls",
      "warn",
      `The connection to ${host} is not encrypted.`,
      "Add sslmode=require to the database URL (on Heroku, node-postgres needs sslmode=no-verify or PGSSLMODE=no-verify, because Heroku's certificates are not signed by a public authority).",
    ),
  ];
});

/** What the next run does to an older ledger: "" when it is current. */
function upgradeNote(presence: ServerProbe["ledger"]): string {
  if (presence.version === 1) return " (0.1.0's; the next run upgrades it)";
  if (!presence.complete) return " (0.2.0's; the next run adds the lock guard's tries and the plans table)";
  return "";
}

const ledger = serverCheck("ledger", (server, { config }) => {
  const { schema } = config;
  const presence = server.ledger;
  const fail = (message: string, fix: string) => [finding("ledger", "fail", message, fix)];
  if (presence.usable === false)
    return fail(
      `This user may not use the ledger schema ${schema}.`,
      `Grant it once as the schema's owner (GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${server.user}, and privileges on its tables), or pass --schema with another name.`,
    );
  if (
    presence.version === "foreign" ||
    (typeof presence.version === "number" && presence.version > LEDGER_VERSION)
  )
    return fail(
      presence.version === "foreign"
        ? `The schema ${schema} holds an attempts table that is not a release-orchestrator ledger.`
        : `The ledger in schema ${schema} is version ${presence.version}, newer than this release-orchestrator (${LEDGER_VERSION}).`,
      presence.version === "foreign"
        ? "Pass --schema with another name (RELEASE_SCHEMA), or drop that table if it is left over."
        : "Upgrade release-orchestrator on every app.",
    );
  if (presence.version !== "missing")
    return [finding("ledger", "pass", `The ledger exists in schema ${schema}${upgradeNote(presence)}.`)];
  if (presence.canCreate || presence.schemaExists)
    return [
      finding(
        "ledger",
        "pass",
        `The ledger schema ${schema} does not exist yet; this user may create it on the first run.`,
      ),
    ];
  return fail(
    `This user may not create the ledger schema ${schema}.`,
    `Create it once as an owner (CREATE SCHEMA ${schema} AUTHORIZATION ${server.user}) or grant CREATE on the database.`,
  );
});

const primary = serverCheck("primary", (server) =>
  server.ledger.readOnly
    ? [
        finding(
          "primary",
          "fail",
          "The server is read-only (a standby or a read-only session): no attempt can be recorded there.",
          "Point DATABASE_URL or RELEASE_DATABASE_URL at the primary.",
        ),
      ]
    : [],
);

/** The session: proven its own (no pooler, proxy or NAT in between), or not; both are safe. */
const session = serverCheck("session", (server, { config }) => [
  server.proven
    ? finding(
        "session",
        "pass",
        "The connection is a session of its own (no pooler in between): waiters wake at once on NOTIFY, and a leader's lost session is seen at once through its advisory lock.",
      )
    : finding(
        "session",
        "pass",
        `The connection goes through a pooler, proxy or NAT (the server does not see this connection as its client): the ledger's lease alone decides ownership, which is safe; waiters poll (an outcome is seen within 1 s) and a dead leader is taken over when its lease ends (${formatDuration(leaseFor(config.killGraceMs))} after its last renewal). With no session to watch, a leader that stops answering without dying (paused) has its command stopped by its supervisor before its lease ends; only a pause of the whole host longer than the lease leaves a moment where its command runs beside the next leader's.`,
        "Set RELEASE_DATABASE_URL to the direct database URL (the command keeps DATABASE_URL): waiters wake at once, and a paused leader's lock session keeps anyone from taking over while it lives.",
      ),
]);

const lock = serverCheck("lock", (server, { config }) => {
  const key = `key ${lockKeyText(config.lockName)}`;
  const leaks = server.leaked.map((holder) =>
    finding(
      "lock leak",
      "warn",
      `Backend pid ${holder.pid}${holder.applicationName ? ` (${holder.applicationName})` : ""}${holder.state ? `, ${holder.state}` : ""}${holder.clientAddr ? `, from ${holder.clientAddr}` : ""} holds the advisory lock "${config.lockName}" (${key}) with no running attempt: a lock left on a pooled server connection (0.1.0 through a transaction-mode pooler) or a lingering session. It blocks nothing (the ledger decides), but status shows it.`,
      `End it: SELECT pg_terminate_backend(${holder.pid}); (behind PgBouncer, RECONNECT in its admin console also works).`,
    ),
  );
  if (leaks.length > 0) return leaks;
  const holder = server.holder;
  return [
    finding(
      "lock",
      "pass",
      holder === undefined
        ? `Lock "${config.lockName}" (${key}) is free.`
        : `Lock "${config.lockName}" (${key}) is held by a running attempt's leader (backend pid ${holder.pid}).`,
    ),
  ];
});

function lockKeyText(lockName: string): string {
  const key = deriveLockKey(lockName);
  return `${key.namespace}, ${key.key}`;
}

/** A stalled leader (lease out, lock session alive) is waited for, never taken over: say so, and the way out. */
const stalled = serverCheck("stalled leader", (server) =>
  server.stalled.map((a) =>
    finding(
      "stalled leader",
      "warn",
      `Attempt #${a.id} by ${a.app} (pid ${a.pid} on ${a.host}) of ${a.task} for ${a.releaseId ?? "(unversioned)"}: ${describeStalled(a.lockBackendPid, a.lease?.renewedMsAgo ?? 0)}`,
      "Resume or stop that process (it may be paused in a debugger, or frozen); or end its lock session to let a waiter take over.",
    ),
  ),
);

/** The lock-queue guard: on or off, whether it may cancel, and a lock_timeout that would act before it. */
const lockGuard = serverCheck("lock guard", (server, { config }) => {
  const name = "lock guard";
  if (config.lockWaitMs === null)
    return [
      finding(
        name,
        "warn",
        "The lock-queue guard is off (--lock-wait off): a statement of the command that waits for a table lock behind an open transaction stalls every app query queued behind it until it gets the lock.",
        "Unset RELEASE_LOCK_WAIT unless the migrator cannot be run again after a cancelled statement (see docs/recipes.md).",
      ),
    ];
  const { superuser, signalBackend, lockTimeoutMs } = server.guard;
  const who = superuser
    ? `${server.user} is a superuser: it may cancel any statement`
    : signalBackend
      ? `${server.user} is a member of pg_signal_backend: it may cancel any non-superuser's statement`
      : `${server.user} may cancel the command's statements only when the command connects as ${server.user} too (pg_cancel_backend needs the same user or pg_signal_backend)`;
  const findings = [
    finding(
      name,
      "pass",
      `The lock-queue guard is on: a statement of the command that waits ${formatDuration(config.lockWaitMs)} for a table lock while other sessions queue behind it is cancelled and the command runs again (up to ${config.lockTries} tries); ${who}.`,
    ),
  ];
  if (lockTimeoutMs > 0 && lockTimeoutMs <= config.lockWaitMs)
    findings.push(
      finding(
        name,
        "warn",
        `The server sets lock_timeout = ${formatDuration(lockTimeoutMs)} for ${server.user}, no longer than --lock-wait (${formatDuration(config.lockWaitMs)}): a waiting statement of the command fails by itself first, and that try is not run again.`,
        `Keep lock_timeout above --lock-wait for the migration user (ALTER ROLE ${server.user} SET lock_timeout = '30s', or RESET it), or lower --lock-wait.`,
      ),
    );
  else if (lockTimeoutMs > 0)
    findings.push(
      finding(
        name,
        "pass",
        `The server sets lock_timeout = ${formatDuration(lockTimeoutMs)} for ${server.user}: a statement still waiting then fails by itself (not run again); the guard acts first, after --lock-wait.`,
      ),
    );
  return findings;
});

/** Every check, in the order of the report. */
export const CHECKS: readonly Check[] = [
  role,
  releaseId,
  password,
  connection,
  serverVersion,
  tls,
  ledger,
  primary,
  session,
  lock,
  stalled,
  lockGuard,
];

export function runChecks(probe: Probe, checks: readonly Check[] = CHECKS): Finding[] {
  return checks.flatMap((check) => check.run(probe));
}

export function formatFindings(findings: Finding[]): string {
  const tag: Record<Verdict, string> = { pass: "PASS", warn: "WARN", fail: "FAIL" };
  return findings
    .map((f) => `${tag[f.verdict]}  ${f.check}: ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ""}`)
    .join("\n");
}
