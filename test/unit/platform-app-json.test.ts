// app.json: valid against a JSON Schema written from Heroku's documented app.json schema, and it (and
// the reference page, docs/reference.md) documents every environment variable the code reads, found
// from the code itself.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { ENV_FILE_OPTION, OPTIONS, RUN_MIGRATIONS_ENV, type OptionSpec } from "../../src/core/options.js";
import { COMMIT_ENV_VARS } from "../../src/core/release-id.js";
import { ROOT } from "../support/cli.js";

interface EnvEntry {
  description?: string;
  value?: string;
  required?: boolean;
}
interface AppJson {
  name: string;
  description: string;
  repository: string;
  env: Record<string, EnvEntry | string>;
  addons: (string | { plan: string })[];
  buildpacks: { url: string }[];
  environments: { test: { addons?: (string | { plan: string })[]; scripts: Record<string, string> } };
}

const appJson = JSON.parse(readFileSync(join(ROOT, "app.json"), "utf8")) as AppJson;
const schema = JSON.parse(readFileSync(join(ROOT, "test/fixtures/app.json.schema.json"), "utf8")) as object;
const reference = readFileSync(join(ROOT, "docs/reference.md"), "utf8");

function validator() {
  return new Ajv({ allErrors: true, strict: true }).compile(schema);
}

/** The system's and the terminal's own variables: conventions every program honours, not this tool's configuration. */
const SYSTEM = new Set(["PATH", "HOME", "LANG", "TERM", "NO_COLOR"]);

/** Names the code reads as `process.env.X`, `env.X`, `env?.X` or `env["X"]`, in the given source files. */
function envReadsIn(files: readonly string[]): Set<string> {
  const names = new Set<string>();
  const pattern = /\benv(?:\?)?(?:\.([A-Z][A-Z0-9_]*)\b|\[\s*"([A-Z][A-Z0-9_]*)"\s*\])/g;
  for (const file of files) {
    for (const match of readFileSync(file, "utf8").matchAll(pattern)) {
      const name = match[1] ?? match[2];
      if (name !== undefined && !SYSTEM.has(name)) names.add(name);
    }
  }
  return names;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  );
}

/** The tool's own sources, its folders included. */
const coreFiles = sourceFiles(join(ROOT, "src"));

/** What the deployed tool reads: every option's variables, the seed recipe's, the env file's, and what the core reads directly. */
function variablesTheToolReads(): string[] {
  const names = new Set<string>([RUN_MIGRATIONS_ENV, ENV_FILE_OPTION.env]);
  for (const spec of OPTIONS as readonly OptionSpec[]) for (const name of spec.env) names.add(name);
  for (const name of envReadsIn(coreFiles)) names.add(name);
  // The release id's Heroku sources (the CI services' variables are documented in docs/reference.md only).
  for (const name of COMMIT_ENV_VARS)
    if (name.startsWith("HEROKU_") || name === "SOURCE_VERSION") names.add(name);
  return [...names].sort();
}

describe("app.json", () => {
  it("validates against the app.json schema", () => {
    const validate = validator();
    expect(validate(appJson), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it("the schema rejects what Heroku would reject (so the check above can fail)", () => {
    const validate = validator();
    const broken = (change: (copy: Record<string, unknown>) => void) => {
      const copy = JSON.parse(JSON.stringify(appJson)) as Record<string, unknown>;
      change(copy);
      return validate(copy);
    };
    expect(broken((c) => (c.envs = c.env))).toBe(false);
    expect(
      broken(
        (c) => ((c.env as Record<string, unknown>).RELEASE_ROLE = { description: "x", requried: false }),
      ),
    ).toBe(false);
    expect(broken((c) => (c.addons = [{ as: "DATABASE" }]))).toBe(false);
    expect(broken((c) => (c.repository = "not a url"))).toBe(false);
    expect(broken((c) => ((c.environments as Record<string, unknown>).staging = {}))).toBe(false);
  });

  it("describes a deployable pair of apps: Postgres add-on, the Node.js buildpack, tests for Heroku CI", () => {
    expect(appJson.name).toBe("release-orchestrator");
    expect(appJson.description.length).toBeGreaterThan(20);
    expect(appJson.repository).toMatch(/^https:\/\//);
    const plans = appJson.addons.map((a) => (typeof a === "string" ? a : a.plan));
    expect(plans.some((p) => p.split(":")[0] === "heroku-postgresql")).toBe(true);
    expect(appJson.buildpacks.map((b) => b.url)).toEqual(["heroku/nodejs"]);
    expect(appJson.environments.test.scripts.test).toMatch(/\bnpm test\b/);
    const testPlans = (appJson.environments.test.addons ?? []).map((a) =>
      typeof a === "string" ? a : a.plan,
    );
    expect(testPlans).toContain("heroku-postgresql:in-dyno");
  });

  it("documents every environment variable the tool reads, each optional, with a description", () => {
    const names = variablesTheToolReads();
    // Sanity: the list comes from the code, and the code reads these.
    expect(names).toEqual(
      expect.arrayContaining([
        "RUN_MIGRATIONS",
        "RELEASE_ROLE",
        "RELEASE_COMMAND",
        "DATABASE_URL",
        "PGAPPNAME",
      ]),
    );
    const missing = names.filter((name) => appJson.env[name] === undefined);
    expect(missing, "variables read by the code but missing from app.json").toEqual([]);
    for (const name of names) {
      const entry = appJson.env[name];
      expect(typeof entry, name).toBe("object");
      const { description, required } = entry as EnvEntry;
      expect(description, `${name} description`).toMatch(/\S{3}/);
      expect(required, `${name} must be required: false (Heroku's default is true)`).toBe(false);
    }
  });

  it("states each option's default in its description, and sets no value that would override the tool's default", () => {
    for (const spec of OPTIONS as readonly OptionSpec[]) {
      const name = spec.env[0];
      if (name === undefined) continue; // a flag only
      const entry = appJson.env[name] as EnvEntry | undefined;
      if (entry === undefined) throw new Error(`${name} is missing from app.json`);
      if (spec.default !== undefined) expect(entry.description, name).toContain(`Default: ${spec.default}.`);
      expect(entry.value, `${name} would be set on every app created from app.json`).toBeUndefined();
    }
    expect((appJson.env[ENV_FILE_OPTION.env] as EnvEntry).description).toContain(
      `Default: ${ENV_FILE_OPTION.default}.`,
    );
  });

  it("documents nothing the code does not read (apart from PGSSLMODE, which node-postgres reads)", () => {
    const known = new Set([...variablesTheToolReads(), "PGSSLMODE"]);
    expect(Object.keys(appJson.env).filter((name) => !known.has(name))).toEqual([]);
  });
});

describe("docs/reference.md", () => {
  it("documents every environment variable the code reads, the platform scripts and the release id sources included", () => {
    const names = new Set([
      ...variablesTheToolReads(),
      ...envReadsIn(sourceFiles(join(ROOT, "src"))),
      ...COMMIT_ENV_VARS,
    ]);
    const missing = [...names].filter((name) => !reference.includes(`\`${name}\``));
    expect(missing, "variables read by the code but not in docs/reference.md (as `NAME`)").toEqual([]);
  });
});
