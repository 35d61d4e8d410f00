// The operator commands' database client: the settings every command shares (connectionSettings),
// named in pg_stat_activity, ended when the work is done.

import type pg from "pg";
import type { Config } from "../core/config.js";
import { deriveLockKey } from "../core/lock-key.js";
import { applicationName, connect, connectionSettings } from "../db/connect.js";
import { ledgerOf, type Ledger } from "../db/ledger/sql.js";

/** The ledger a config names: its schema, fenced by its lock's key. */
export function ledgerFor(config: Pick<Config, "schema" | "lockName">): Ledger {
  return ledgerOf(config.schema, deriveLockKey(config.lockName));
}

/** A client with the settings every command shares, ended when `fn` settles. */
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
