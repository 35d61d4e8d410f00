// "This test needs tool X": one place that finds the tools from Debian some e2e tests drive (Chromium,
// PgBouncer, foreman, psql, Django) and decides what a missing one means. Outside CI the tests that
// need it are skipped, with one line naming the tool and the command that installs it; with CI=true a
// missing tool fails the run (CI must test everything). No test installs anything: .ci/run does.
//
// TEST_HIDE_TOOLS=chromium,pgbouncer treats those tools as missing (to see the skips on a machine
// that has them, without uninstalling anything).

import { execFileSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { beforeEach } from "vitest";

export type ToolName = "chromium" | "pgbouncer" | "foreman" | "psql" | "django";

export interface Tool {
  name: ToolName;
  /** Where it is (for Django: a python3 that imports django and psycopg2); undefined when missing. */
  path: string | undefined;
  /** Why the tests that need it are skipped: one line naming the tool and how to install it. */
  missing: string | undefined;
}

interface ToolSpec {
  /** What it is, for the message. */
  what: string;
  install: string;
  locate(): string | undefined;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function output(file: string, args: string[]): string | undefined {
  try {
    return execFileSync(file, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 10_000,
    }).trim();
  } catch {
    return undefined;
  }
}

const TOOLS: Record<ToolName, ToolSpec> = {
  chromium: {
    what: "Chromium (the status page is tested in a real headless browser)",
    install: "apt-get install chromium",
    locate: () =>
      ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(executable) ??
      onPath("chromium") ??
      onPath("chromium-browser"),
  },
  pgbouncer: {
    what: "PgBouncer (the pooler tests)",
    install: "apt-get install pgbouncer",
    locate: () => ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find(executable) ?? onPath("pgbouncer"),
  },
  foreman: {
    what: "foreman (the Procfile run by a real Procfile runner)",
    install: "apt-get install ruby-foreman (or gem install foreman)",
    locate: () => {
      const found = onPath("foreman");
      if (found !== undefined) return found;
      // Where `gem install --user-install foreman` puts it.
      const gemDir = output("ruby", ["-e", "print Gem.user_dir"]);
      const gemBin = gemDir === undefined ? undefined : join(gemDir, "bin", "foreman");
      return gemBin !== undefined && executable(gemBin) ? gemBin : undefined;
    },
  },
  psql: {
    what: "psql (the plain-SQL recipe of docs/recipes.md)",
    install: "apt-get install postgresql-client",
    locate: () => onPath("psql"),
  },
  django: {
    what: "Django with psycopg2 (the Django recipe of docs/recipes.md)",
    install: "apt-get install python3-django python3-psycopg2",
    // Debian's python3 first: a version manager's python3 on PATH may lack the Debian packages.
    locate: () =>
      ["/usr/bin/python3", "python3"].find(
        (python) => output(python, ["-c", "import django, psycopg2; print('ok')"]) === "ok",
      ),
  },
};

/** True when CI=true (or 1/yes): then a missing tool is an error, not a skip. */
export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.CI ?? "");
}

function hidden(name: ToolName, env: NodeJS.ProcessEnv): boolean {
  return (env.TEST_HIDE_TOOLS ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .includes(name);
}

/** Looks for the tool; missing with CI=true, throws (CI must test everything). */
export function checkTool(name: ToolName, env: NodeJS.ProcessEnv = process.env): Tool {
  const spec = TOOLS[name];
  const path = hidden(name, env) ? undefined : spec.locate();
  const why = hidden(name, env) ? " (hidden by TEST_HIDE_TOOLS)" : "";
  const missing =
    path === undefined
      ? `${name} is not installed${why}: ${spec.what} needs it; install it with: ${spec.install} (.ci/run installs every tool the suite uses)`
      : undefined;
  if (missing !== undefined && inCI(env)) throw new Error(`CI=true and ${missing}`);
  return { name, path, missing };
}

const found = new Map<ToolName, Tool>();

/**
 * Finds a tool (once per process). Missing with CI=true: throws, which fails the test file. Missing
 * otherwise: logs one line and returns `path: undefined`; the caller skips (see requireTool).
 */
export function findTool(name: ToolName): Tool {
  const known = found.get(name);
  if (known !== undefined) return known;
  const tool = checkTool(name);
  if (tool.missing !== undefined) process.stderr.write(`[tools] skipping: ${tool.missing}\n`);
  found.set(name, tool);
  return tool;
}

/**
 * For a test file or describe block whose every test needs the tool: finds it (see findTool) and, if
 * it is missing, skips each test of the enclosing block with the reason. Hooks that would use the tool
 * (a beforeAll starting it) must check `tool.path` themselves.
 */
export function requireTool(name: ToolName): Tool {
  const tool = findTool(name);
  const { missing } = tool;
  if (missing !== undefined) beforeEach((context) => context.skip(missing));
  return tool;
}
