// A short connection to the ledger for one step outside a task's ownership (recording an app's plan,
// its arrival before a post-deploy task): connected with run's settings, the ledger made ready, closed after.

import type pg from "pg";
import { deriveLockKey } from "../core/lock-key.js";
import { applicationName, connect, connectionSettings } from "../db/connect.js";
import { ensureLedger } from "../db/ledger/schema.js";
import { ledgerOf, type Ledger } from "../db/ledger/sql.js";
import type { RunInput } from "./runbook.js";

export async function withLedger<T>(
  input: RunInput,
  name: readonly string[],
  use: (client: pg.Client, ledger: Ledger) => Promise<T>,
): Promise<T> {
  const { config } = input;
  const ledger = ledgerOf(config.schema, deriveLockKey(config.lockName));
  const client = await connect({
    ...connectionSettings(config, "run"),
    applicationName: applicationName(name),
    signal: input.signal,
  });
  try {
    await ensureLedger(client, ledger, input.signal);
    return await use(client, ledger);
  } finally {
    await client.end().catch(() => {});
  }
}
