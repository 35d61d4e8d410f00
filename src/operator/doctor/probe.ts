// What `doctor` looks at, read once: the release id, and (when the database answers) the server, the
// ledger's presence, whether the session is proven, and who holds the lock. The checks (checks.ts) are
// pure functions of this probe, tested with fake ones.

import type pg from "pg";
import type { Config, Environment } from "../../core/config.js";
import { ReleaseError } from "../../core/errors.js";
import { deriveLockKey } from "../../core/lock-key.js";
import type { ReleaseId } from "../../core/release-id.js";
import { applicationName, connect, connectionSettings } from "../../db/connect.js";
import { isStalled } from "../../core/decide.js";
import type { Attempt } from "../../core/records.js";
import { readAttempts, readLeakedLocks } from "../../db/ledger/reads.js";
import { isReadable, readPresence, type LedgerPresence } from "../../db/ledger/schema.js";
import { ledgerOf } from "../../db/ledger/sql.js";
import { provesOwnSession, readLockHolder, type LockHolder } from "../../db/session.js";
import { resolveReleaseId } from "../../load/release-id.js";

/** What the server said, when the connection worked. */
export interface ServerProbe {
  version: string;
  versionNum: number;
  user: string;
  /** Whether this connection is encrypted (null when pg_stat_ssl says nothing). */
  ssl: boolean | null;
  ledger: LedgerPresence;
  /** This connection is its own backend's session: no pooler, proxy or NAT in between. */
  proven: boolean;
  /** Sessions that hold the lock with no running attempt. */
  leaked: LockHolder[];
  /** Who holds the lock now, if anyone. */
  holder: LockHolder | undefined;
  /** Running attempts whose leader is stalled: lease out, lock session alive (paused or frozen). */
  stalled: Attempt[];
  /** What the lock-queue guard may do as this user, and the lock_timeout the server gives its sessions (ms, 0: none). */
  guard: { superuser: boolean; signalBackend: boolean; lockTimeoutMs: number };
}

export interface Probe {
  config: Config;
  /** The release id, undefined when none is found, or the sentence that says why a source is wrong. */
  release: ReleaseId | undefined | { error: string };
  /** The server, or why it could not be reached (one sentence, never the password). */
  server: ServerProbe | { error: string };
}

export async function readProbe(config: Config, env: Environment, cwd: string): Promise<Probe> {
  let release: Probe["release"];
  try {
    release = await resolveReleaseId(config, env, cwd);
  } catch (error) {
    release = { error: (error as Error).message };
  }
  let client: pg.Client;
  try {
    // The very settings run uses (PGSSLMODE from .env included).
    client = await connect({ ...connectionSettings(config), applicationName: applicationName(["doctor"]) });
  } catch (error) {
    return {
      config,
      release,
      server: { error: error instanceof ReleaseError ? error.message : String(error) },
    };
  }
  try {
    return { config, release, server: await readServer(client, config) };
  } finally {
    await client.end().catch(() => {});
  }
}

async function readServer(client: pg.Client, config: Config): Promise<ServerProbe> {
  const info = (
    await client.query<{
      version: string;
      num: number;
      user: string;
      ssl: boolean | null;
      superuser: boolean;
      signal: boolean;
      lock_timeout: number;
    }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
              current_user AS user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl,
              (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
              pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal,
              (SELECT setting::integer FROM pg_settings WHERE name = 'lock_timeout') AS lock_timeout`,
    )
  ).rows[0];
  if (info === undefined) throw new Error("the server did not answer its version");
  const key = deriveLockKey(config.lockName);
  const ledger = ledgerOf(config.schema, key);
  const presence = await readPresence(client, ledger);
  const running = isReadable(presence)
    ? (await readAttempts(client, ledger, { limit: 100, includeOutput: false })).filter(
        (a) => a.status === "running",
      )
    : [];
  return {
    version: info.version,
    versionNum: info.num,
    user: info.user,
    ssl: info.ssl,
    ledger: presence,
    proven: await provesOwnSession(client),
    leaked: await readLeakedLocks(client, ledger),
    holder: await readLockHolder(client, key),
    stalled: running.filter((a) => isStalled(a)),
    guard: { superuser: info.superuser, signalBackend: info.signal, lockTimeoutMs: info.lock_timeout },
  };
}
