// The recipes of docs/recipes.md, tried as a new user would: each release command is read from its
// recipe table (so the docs cannot drift), and the ones whose tools this machine has (plain psql,
// node-pg-migrate) are run for real, two at once, against a real database.

import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { ROOT, cliInvocation, scratchDir } from "../support/cli.js";
import { recipes } from "../support/docs.js";
import { findTool } from "../support/tools.js";
import { appEnv } from "./platform-support.js";

/** The plain-SQL recipe runs psql (postgresql-client); without it, outside CI, those tests are skipped. */
const PSQL = findTool("psql");

/** Splits a one-line shell command into words, honouring single quotes (all the recipes need). */
function shellWords(command: string): string[] {
  const words: string[] = [];
  for (const match of command.matchAll(/'([^']*)'|(\S+)/g)) words.push(match[1] ?? match[2] ?? "");
  return words;
}

/**
 * Runs a recipe the way its Procfile line would run: `npx release-orchestrator` is this checkout's
 * Node CLI, a bare `release-orchestrator` its standalone binary, on a PATH without node.
 */
function runRecipe(command: string, cwd: string, env: Record<string, string | undefined>, app: string) {
  const words = shellWords(command);
  const npx = words[0] === "npx";
  const args = words.slice(npx ? 2 : 1);
  expect(words.slice(0, npx ? 2 : 1)).toEqual(
    npx ? ["npx", "release-orchestrator"] : ["release-orchestrator"],
  );
  expect(args[0]).toBe("run");
  const tool = cliInvocation(npx ? "node" : "binary", appEnv({ ...env, RELEASE_APP_NAME: app }));
  return execa(tool.file, [...tool.args, ...args], {
    cwd,
    env: tool.env,
    extendEnv: false,
    reject: false,
    all: true,
    stdin: "ignore",
    timeout: 60_000,
  });
}

describe("docs/recipes.md recipes", () => {
  const psqlDb = useTestDatabase("platform-recipe-psql");
  const npmDb = useTestDatabase("platform-recipe-npm");
  const table = recipes();

  it("has one wrapped release command per framework, each with the framework's own migrate command after --", () => {
    expect([...table.keys()]).toEqual(["Rails", "Django", "Prisma", "node-pg-migrate", "plain SQL"]);
    const after = (name: string) => (table.get(name) ?? "").split(" -- ")[1];
    expect(after("Rails")).toBe("bundle exec rake db:migrate");
    expect(after("Django")).toBe("python manage.py migrate --noinput");
    expect(after("Prisma")).toBe("npx prisma migrate deploy");
    // A cancelled statement leaves a Prisma migration marked failed (P3009): the recipe turns the guard off.
    expect((table.get("Prisma") ?? "").split(" -- ")[0]).toBe("npx release-orchestrator run --lock-wait off");
    expect(after("node-pg-migrate")).toBe("npx node-pg-migrate up");
    expect(after("plain SQL")).toMatch(
      /^sh -c 'psql "\$DATABASE_URL" -v ON_ERROR_STOP=1 --single-transaction -f db\/schema\.sql'$/,
    );
  });

  it("plain SQL: two apps at once apply db/schema.sql once; a third run finds it already done", async ({
    skip,
  }) => {
    if (PSQL.path === undefined) return skip(PSQL.missing);
    const recipe = table.get("plain SQL") ?? "";
    const app = scratchDir();
    mkdirSync(join(app, "db"));
    writeFileSync(
      join(app, "db", "schema.sql"),
      `CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL);
SELECT pg_sleep(1);
INSERT INTO notes (body) VALUES ('applied');
`,
    );
    const env = { DATABASE_URL: psqlDb().url };
    const runs = await Promise.all(["s-app", "s-admin"].map((name) => runRecipe(recipe, app, env, name)));
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.all).join("\n---\n"),
    ).toEqual([0, 0]);
    expect(await psqlDb().query("SELECT body FROM notes")).toEqual([{ body: "applied" }]);
    // No git here and no id set: --fingerprint db made the release id the content of db/.
    expect(runs.map((r) => r.all).join("\n")).toMatch(/for release fp-[0-9a-f]{16}/);

    const again = await runRecipe(recipe, app, env, "s-app");
    expect(again.exitCode, again.all).toBe(0);
    expect(again.all).toMatch(/already succeeded/);
    expect(await psqlDb().query("SELECT count(*)::int AS n FROM notes")).toEqual([{ n: 1 }]);
  });

  it("plain SQL: ON_ERROR_STOP makes a broken file fail the release, and --single-transaction leaves nothing behind", async ({
    skip,
  }) => {
    if (PSQL.path === undefined) return skip(PSQL.missing);
    const recipe = table.get("plain SQL") ?? "";
    const app = scratchDir();
    mkdirSync(join(app, "db"));
    writeFileSync(join(app, "db", "schema.sql"), "CREATE TABLE half (id int);\nSELECT no_such_function();\n");
    const run = await runRecipe(recipe, app, { DATABASE_URL: psqlDb().url }, "s-app");
    expect(run.exitCode, run.all).toBe(3);
    expect(await psqlDb().query("SELECT to_regclass('half') IS NULL AS absent")).toEqual([{ absent: true }]);
  });

  it("node-pg-migrate: two apps at once, the migrations run once and both exit 0", async () => {
    const recipe = table.get("node-pg-migrate") ?? "";
    const app = scratchDir();
    // An app with node-pg-migrate installed (npx finds it in node_modules) and one migration.
    symlinkSync(join(ROOT, "node_modules"), join(app, "node_modules"));
    writeFileSync(
      join(app, "package.json"),
      `${JSON.stringify({ name: "recipe-app", private: true, type: "module" })}\n`,
    );
    mkdirSync(join(app, "migrations"));
    writeFileSync(
      join(app, "migrations", "1700000000000_widgets.js"),
      `export const up = (pgm) => {
  pgm.createTable("widgets", { id: "id" });
  pgm.sql("SELECT pg_sleep(1)");
  pgm.sql("INSERT INTO widgets DEFAULT VALUES");
};
`,
    );
    const env = { DATABASE_URL: npmDb().url, RELEASE_ID: "recipe-1" };
    const runs = await Promise.all(["s-app", "s-admin"].map((name) => runRecipe(recipe, app, env, name)));
    const output = runs.map((r) => r.all).join("\n---\n");
    expect(
      runs.map((r) => r.exitCode),
      output,
    ).toEqual([0, 0]);
    expect(output).not.toMatch(/Another migration is already running/);
    expect(output.match(/Migrations complete!/g)).toHaveLength(1);
    expect(await npmDb().query("SELECT count(*)::int AS n FROM widgets")).toEqual([{ n: 1 }]);
  });
});
