// `doctor`: read the probe once, run every check over it. Exit 78 when one fails (the CLI decides).

import type { Config, Environment } from "../../core/config.js";
import { runChecks, type Finding } from "./checks.js";
import { readProbe } from "./probe.js";

export { formatFindings, type Finding, type Verdict } from "./checks.js";

/** Checks the setup: configuration, release id, connection, pooler, TLS, privileges, version, lock. */
export async function runDoctor(config: Config, env: Environment, cwd: string): Promise<Finding[]> {
  return runChecks(await readProbe(config, env, cwd));
}
