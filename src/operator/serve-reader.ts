// The status page's reads of the ledger: through a small pool that reconnects by itself (so the page
// keeps working across a database restart), shared by viewers that refresh at the same moment, and
// scrubbed of every secret this process knows. Logs once when the database stops and starts answering.

import pg from "pg";
import type { Config } from "../core/config.js";
import { formatDuration } from "../core/duration.js";
import { deriveLockKey } from "../core/lock-key.js";
import { formatMetrics } from "../core/metrics.js";
import { groupReleases } from "../core/releases.js";
import type { Reporter } from "../core/reporter.js";
import {
  applicationName,
  connectionSettings,
  describeTarget,
  explainConnectError,
  isConnectionLoss,
  pgClientConfig,
} from "../db/connect.js";
import { readPhasesIfRecorded } from "../db/ledger/plans.js";
import { readAttempts, readMetricsSnapshot, readUnattachedOutcomes } from "../db/ledger/reads.js";
import { isReadable, readPresence } from "../db/ledger/schema.js";
import { ledgerOf, type Ledger } from "../db/ledger/sql.js";
import { readLockHolder } from "../db/session.js";
import { toReleasesResponse, type ReleasesResponse } from "./releases-api.js";

/** The body of /api/releases, read in one pooled session. */
async function readReleasesResponse(
  client: pg.Client,
  config: Config,
  ledger: Ledger,
  limit: number,
): Promise<ReleasesResponse> {
  // Asked first, from the catalogs: in this read's transaction, a read of a missing table would abort
  // every read after it (a fresh database, before any run, answered 503).
  const readable = isReadable(await readPresence(client, ledger));
  const attempts = readable ? await readAttempts(client, ledger, { limit }) : [];
  const phases = await readPhasesIfRecorded(client, ledger);
  const releases = groupReleases(attempts, readable ? await readUnattachedOutcomes(client, ledger) : []);
  const holder = await readLockHolder(client, ledger.key);
  // A running attempt has run until now by the database's clock, the one its start was taken by.
  const clock = await client.query<{ now: Date }>("SELECT clock_timestamp() AS now");
  const now = clock.rows[0]!.now.getTime();
  return toReleasesResponse({
    schema: config.schema,
    limit,
    lockName: config.lockName,
    holder,
    releases,
    phases,
    now,
  });
}

export interface LedgerReader {
  /** The JSON body of /api/releases, or undefined when the database does not answer. */
  read(limit: number): Promise<string | undefined>;
  /** The /metrics body, or undefined when the database does not answer. */
  metrics(): Promise<string | undefined>;
  ping(): Promise<{ ok: true; ms: number } | { ok: false }>;
  end(): Promise<void>;
}

/**
 * Reads through a pool of at most 2 sessions. pg.Pool drops a session that errors (a restarted or
 * terminated backend) and opens a new one on the next request; a query that fails because its pooled
 * session died is retried once on a fresh one, so a database restart costs no failed request.
 */
export function createLedgerReader(config: Config, reporter: Reporter): LedgerReader {
  const pool = new pg.Pool({
    ...pgClientConfig(connectionSettings(config)),
    application_name: applicationName(["serve"]),
    max: 2,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: Math.max(1000, Math.min(config.connectTimeoutMs, 5000)),
    // Client-side: a pooler refuses statement_timeout as a startup parameter (see tracked()).
    query_timeout: 15_000,
    keepAlive: true,
  });
  // An idle pooled session whose server goes away emits 'error'; the pool drops it. Nothing to do here.
  pool.on("error", () => {});
  const ledger = ledgerOf(config.schema, deriveLockKey(config.lockName));
  const tracked = trackedReads(pool, describeTarget(config.databaseUrl ?? ""), reporter);
  const inFlight = new Map<number, Promise<string | undefined>>();
  // Output tails were scrubbed by the process that recorded them; scrub again with what this one knows.
  const scrubbed = (payload: ReleasesResponse) =>
    JSON.stringify(payload, (_key, value: unknown) =>
      typeof value === "string" ? reporter.redact(value) : value,
    );
  return {
    read(limit) {
      // Viewers that refresh at the same moment share one read.
      let reading = inFlight.get(limit);
      if (reading === undefined) {
        reading = tracked((client) =>
          readReleasesResponse(client, config, ledger, limit).then(scrubbed),
        ).finally(() => inFlight.delete(limit));
        inFlight.set(limit, reading);
      }
      return reading;
    },
    metrics: () =>
      tracked(async (client) => {
        // Asked first: the snapshot's read of a missing ledger would abort the reads after it.
        const [phase] = await readPhasesIfRecorded(client, ledger, { limit: 1 });
        const snapshot = await readMetricsSnapshot(client, ledger, config.lockName);
        return reporter.redact(formatMetrics({ ...snapshot, phase: phase ?? null }));
      }),
    async ping() {
      const started = Date.now();
      const ok = await tracked((client) => client.query("SELECT 1"));
      return ok === undefined ? { ok: false } : { ok: true, ms: Date.now() - started };
    },
    end: () => pool.end().catch(() => {}),
  };
}

/**
 * Runs reads in one pooled session, in a transaction whose statement_timeout is set locally (it works
 * through PgBouncer in any mode); undefined when the database does not answer. A read that fails
 * because its pooled session died is retried once on a fresh one. Logs once when the database stops
 * answering and once when it answers again; never the password.
 */
function trackedReads(
  pool: pg.Pool,
  target: string,
  reporter: Reporter,
): <T>(fn: (client: pg.Client) => Promise<T>) => Promise<T | undefined> {
  let answering: boolean | undefined;
  const track = (error: unknown, startedMs: number): void => {
    if (error === undefined) {
      if (answering === false) reporter.info("status page: the database answers again.");
      answering = true;
      return;
    }
    if (answering !== false) {
      const why = isConnectionLoss(error)
        ? explainConnectError(error, target, formatDuration(Date.now() - startedMs))
        : `Reading the ledger in ${target} failed: ${(error as Error).message}.`;
      reporter.warn(`status page: ${why} The page shows it and retries by itself.`);
    }
    answering = false;
  };
  const once = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN READ ONLY");
        await client.query("SET LOCAL statement_timeout = 10000");
        const result = await fn(client);
        await client.query("COMMIT");
        client.release();
        return result;
      } catch (error) {
        client.release(true);
        if (attempt === 1 && isConnectionLoss(error)) continue;
        throw error;
      }
    }
  };
  return async (fn) => {
    const started = Date.now();
    try {
      const result = await once(fn);
      track(undefined, started);
      return result;
    } catch (error) {
      track(error, started);
      return undefined;
    }
  };
}
