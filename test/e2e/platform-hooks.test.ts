// The release-phase recipes of the platforms that copied Heroku's: Fly.io, Render, Railway, Nomad and
// ECS. Each config is parsed by a real parser of its format (smol-toml, yaml, JSON.parse, HashiCorp's
// HCL parser), what the platform would run is taken from it (Fly: release_command split into words as
// flyctl does, without a shell; Render: preDeployCommand through a shell; Railway: the preDeployCommand
// array; Nomad: the prestart task's command and args; ECS: the containers' commands), and that is run
// for real from this repository (where `npx --no-install release-orchestrator` is this checkout's
// built CLI), once per app, service or allocation, all at once, on one database, with the platform's
// variables set. The migrations run once and every instance exits 0; when they fail, the leader exits
// with the command's code and every other instance with 76.

import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseHcl } from "@cdktn/hcl2json";
import { execa, type ResultPromise } from "execa";
import pg from "pg";
import { parse as parseToml } from "smol-toml";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { FLY_RELEASE_GROUP } from "../../src/core/config.js";
import { stampReleaseId } from "../../demo/stamp-release-id.js";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { CLI, ROOT, cleanEnv, scratchDir, type CliRun } from "../support/cli.js";
import { MIGRATIONS, appEnv, readLedger, readMigrated, waitForStderr } from "./platform-support.js";

const EXAMPLES = join(ROOT, "examples");
const ORCHESTRATOR = ["npx", "--no-install", "release-orchestrator"];
const fresh = useFreshDatabases("platform-hooks");

// `npx --no-install release-orchestrator`, run in this repository, starts its own bin, dist/cli.js:
// npm makes a bin executable when it installs a package (the image's npm ci); the build here does not.
beforeAll(() => chmodSync(CLI, 0o755));

/** One process the platform starts: the program and its words, and the environment it gets. */
interface Instance {
  name: string;
  file: string;
  args: string[];
  env: Record<string, string | undefined>;
}

interface Started {
  name: string;
  process: ResultPromise;
  done: Promise<CliRun>;
}

/** Starts an instance as the platform would: in the app's directory (this repository), its env only. */
function start(instance: Instance, db: TestDatabase): Started {
  const startedAt = Date.now();
  const child = execa(instance.file, instance.args, {
    cwd: ROOT,
    env: cleanEnv(appEnv(instance.env)),
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: 90_000,
  });
  const password = decodeURIComponent(new URL(db.url).password);
  const done = child.then((result) => {
    const run: CliRun = {
      exitCode: result.exitCode ?? -1,
      stdout: String(result.stdout ?? ""),
      stderr: String(result.stderr ?? ""),
      startedAt,
      exitedAt: Date.now(),
    };
    if (password !== "" && `${run.stdout}${run.stderr}`.includes(password))
      throw new Error(`the database password appeared in the output of ${instance.name}`);
    return run;
  });
  return { name: instance.name, process: child, done };
}

/** Words of a command line as flyctl splits release_command (github.com/google/shlex): no shell. */
function shlexSplit(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    const escaped = c === "\\" && quote !== "'" && i + 1 < line.length;
    if (escaped) {
      word += line.charAt(++i);
      inWord = true;
    } else if (quote !== "") {
      if (c === quote) quote = "";
      else word += c;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== "") throw new Error(`unclosed ${quote} in: ${line}`);
  if (inWord) words.push(word);
  return words;
}

/** The orchestrator's verb, options and wrapped command in a command line; throws when it is not one. */
function orchestratorCall(words: readonly string[]): { verb: string; options: string[]; command: string[] } {
  expect(words.slice(0, ORCHESTRATOR.length), words.join(" ")).toEqual(ORCHESTRATOR);
  const [verb = "", ...rest] = words.slice(ORCHESTRATOR.length);
  const dashes = rest.indexOf("--");
  return dashes < 0
    ? { verb, options: rest, command: [] }
    : { verb, options: rest.slice(0, dashes), command: rest.slice(dashes + 1) };
}

/** A build of the image: the commit stamped into a .release-id file, as the examples' Dockerfiles do. */
function stampedImage(commit: string): string {
  const dir = scratchDir();
  stampReleaseId({ SOURCE_VERSION: commit }, dir);
  return join(dir, ".release-id");
}

/** An image with no .release-id: the platform's own variable names the release. */
function noReleaseIdFile(): string {
  return join(scratchDir(), ".release-id");
}

/**
 * Makes the first migration fail, late: a transaction of the test creates the table it creates and
 * commits only once every instance has started leading or waiting, so no instance starts after the
 * failure (and would lead a new attempt).
 */
async function failingMigration(db: TestDatabase): Promise<{ release: (s: Started[]) => Promise<void> }> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query("BEGIN");
  await client.query("CREATE TABLE orders (id integer)");
  return {
    release: async (started) => {
      try {
        await Promise.all(started.map((s) => waitForStderr(s.process, /; (running|waiting for) /)));
        await client.query("COMMIT");
      } finally {
        await client.end();
      }
    },
  };
}

async function exitCodes(started: Started[]): Promise<Record<string, number>> {
  const runs = await Promise.all(started.map((s) => s.done));
  const output = runs.map((r, i) => `--- ${started[i]?.name}\n${r.stderr}`).join("\n");
  return Object.fromEntries(
    runs.map((r, i) => {
      if (r.exitCode < 0) throw new Error(output);
      return [started[i]?.name ?? "?", r.exitCode];
    }),
  );
}

/** Every instance exited 0, one attempt ran the migrations once, the others followed it. */
async function expectOneRun(db: TestDatabase, releaseId: string, started: Started[]): Promise<string> {
  const runs = await Promise.all(started.map((s) => s.done));
  expect(
    runs.map((r) => r.exitCode),
    runs.map((r, i) => `--- ${started[i]?.name}\n${r.stderr}`).join("\n"),
  ).toEqual(started.map(() => 0));
  const ledger = await readLedger(db, releaseId);
  expect(ledger.attempts).toHaveLength(1);
  expect(ledger.attempts[0]?.status).toBe("succeeded");
  expect(ledger.followers).toHaveLength(started.length - 1);
  expect(
    ledger.followers.every((f) => f.outcome === "succeeded" && f.attempt_id === ledger.attempts[0]?.id),
  ).toBe(true);
  const migrated = await readMigrated(db);
  expect(migrated.applied).toEqual(MIGRATIONS);
  expect(migrated.backfillEvents).toBe(migrated.orders);
  return ledger.attempts[0]?.app ?? "";
}

/** The leader exited with the migration's own code (1), every other instance with 76. */
async function expectLeaderCodeAndFollowers76(
  db: TestDatabase,
  releaseId: string,
  started: Started[],
): Promise<void> {
  const codes = await exitCodes(started);
  const ledger = await readLedger(db, releaseId);
  expect(ledger.attempts, JSON.stringify(codes)).toHaveLength(1);
  expect(ledger.attempts[0]?.status).toBe("failed");
  const leader = ledger.attempts[0]?.app ?? "";
  expect(Object.keys(codes)).toContain(leader);
  for (const [name, code] of Object.entries(codes)) expect(code, name).toBe(name === leader ? 1 : 76);
}

// ---------------------------------------------------------------------------------------------------

interface FlyToml {
  app: string;
  primary_region: string;
  deploy: { release_command: string; release_command_timeout: string };
  env?: Record<string, string>;
}

describe("examples/fly: two Fly apps on one Postgres, each with a release_command", () => {
  const apps = ["shop-web", "shop-admin"].map(
    (dir) => parseToml(readFileSync(join(EXAMPLES, "fly", dir, "fly.toml"), "utf8")) as unknown as FlyToml,
  );

  it("splits a command line as flyctl does: quotes group words, a backslash escapes, no shell", () => {
    expect(shlexSplit(`run  --app "shop web" 'a "b"' c\\ d "" -- x`)).toEqual([
      "run",
      "--app",
      "shop web",
      'a "b"',
      "c d",
      "",
      "--",
      "x",
    ]);
    expect(() => shlexSplit(`run "open`)).toThrow(/unclosed/);
  });

  it("release_command runs the orchestrator with the command after -- and a --wait-timeout below release_command_timeout", () => {
    expect(apps.map((a) => a.app)).toEqual(["shop-web", "shop-admin"]);
    for (const app of apps) {
      const call = orchestratorCall(shlexSplit(app.deploy.release_command));
      expect(call.verb).toBe("run");
      expect(call.command).toEqual([
        "npx",
        "--no-install",
        "node-pg-migrate",
        "up",
        "--database-url-var",
        "RELEASE_DATABASE_URL",
      ]);
      const wait = call.options[call.options.indexOf("--wait-timeout") + 1] ?? "";
      expect(Number.parseInt(wait, 10)).toBeLessThan(Number.parseInt(app.deploy.release_command_timeout, 10));
      expect(app.deploy.release_command_timeout).toMatch(/^\d+m$/);
      expect(wait).toMatch(/^\d+m$/);
    }
  });

  /** The release Machine of one app: flyctl's env (RELEASE_COMMAND=1), the app's [env] and secrets. */
  function releaseMachine(
    app: FlyToml,
    db: TestDatabase,
    idFile: string,
    line = app.deploy.release_command,
  ): Instance {
    const [file = "", ...args] = shlexSplit(line);
    return {
      name: app.app,
      file,
      args,
      env: {
        ...app.env,
        // Fly Managed Postgres: the pooled URL (unreachable here: nothing may use it) and the direct one.
        DATABASE_URL: "postgres://fly-user:pooled@127.0.0.1:9/fly-db",
        RELEASE_DATABASE_URL: db.url,
        RELEASE_COMMAND: "1",
        FLY_PROCESS_GROUP: FLY_RELEASE_GROUP,
        FLY_APP_NAME: app.app,
        FLY_IMAGE_REF: `registry.fly.io/${app.app}:deployment-01JF2Q${app.app.length}X`,
        FLY_MACHINE_ID: `e82d${app.app.length}1`,
        FLY_REGION: app.primary_region,
        PRIMARY_REGION: app.primary_region,
        RELEASE_ID_FILE: idFile,
      },
    };
  }

  it("both apps deployed at once: one release Machine runs the migrations, the other waits, both exit 0", async () => {
    const db = await fresh("fly");
    const commit = "f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4";
    const idFile = stampedImage(commit);
    const started = apps.map((app) => start(releaseMachine(app, db, idFile), db));
    expect(["shop-web", "shop-admin"]).toContain(await expectOneRun(db, commit, started));
  });

  it("a failing migration: the leading app exits with its code, the other with 76", async () => {
    const db = await fresh("fly-fail");
    const commit = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
    const idFile = stampedImage(commit);
    const failing = await failingMigration(db);
    const started = apps.map((app) => start(releaseMachine(app, db, idFile), db));
    await failing.release(started);
    await expectLeaderCodeAndFollowers76(db, commit, started);
  });

  it("a release_command with no command after --: exit 64, saying RELEASE_COMMAND=1 is Fly's, nothing run", async () => {
    const db = await fresh("fly-no-command");
    const [app] = apps as [FlyToml];
    const line = app.deploy.release_command.replace(/ -- .*$/, "");
    const run = await start(releaseMachine(app, db, stampedImage("ab".repeat(20)), line), db).done;
    expect(run.exitCode, run.stderr).toBe(64);
    expect(run.stderr).toContain('RELEASE_COMMAND is "1" because Fly.io sets it in its release Machine');
  });
});

// ---------------------------------------------------------------------------------------------------

interface RenderService {
  type: string;
  name: string;
  preDeployCommand: string;
  envVars: { key: string; fromDatabase?: { name: string; property: string } }[];
}

describe("examples/render/render.yaml: two services, each with a preDeployCommand", () => {
  const blueprint = parseYaml(readFileSync(join(EXAMPLES, "render/render.yaml"), "utf8")) as {
    services: RenderService[];
    databases: { name: string }[];
  };

  it("has two web services on one database whose preDeployCommand runs the orchestrator around the migrations", () => {
    expect(blueprint.services.map((s) => [s.type, s.name])).toEqual([
      ["web", "shop-web"],
      ["web", "shop-admin"],
    ]);
    expect(blueprint.databases).toHaveLength(1);
    for (const service of blueprint.services) {
      expect(orchestratorCall(shlexSplit(service.preDeployCommand))).toEqual({
        verb: "run",
        options: [],
        command: ["npm", "run", "migrate"],
      });
      expect(service.envVars).toContainEqual({
        key: "DATABASE_URL",
        fromDatabase: { name: blueprint.databases[0]?.name, property: "connectionString" },
      });
    }
  });

  function preDeploy(service: RenderService, db: TestDatabase, commit: string): Instance {
    return {
      name: service.name,
      file: "sh",
      args: ["-c", service.preDeployCommand],
      env: {
        RENDER: "true",
        RENDER_SERVICE_NAME: service.name,
        RENDER_SERVICE_ID: `srv-${service.name}`,
        RENDER_SERVICE_TYPE: service.type,
        RENDER_GIT_COMMIT: commit,
        RENDER_GIT_BRANCH: "main",
        DATABASE_URL: db.url,
        RELEASE_ID_FILE: noReleaseIdFile(),
      },
    };
  }

  it("a Blueprint sync deploys both: one pre-deploy command migrates (release id RENDER_GIT_COMMIT), both exit 0", async () => {
    const db = await fresh("render");
    const commit = "7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b";
    const started = blueprint.services.map((s) => start(preDeploy(s, db, commit), db));
    expect(["shop-web", "shop-admin"]).toContain(await expectOneRun(db, commit, started));
  });

  it("a failing migration: the leading service exits with its code, the other with 76", async () => {
    const db = await fresh("render-fail");
    const commit = "1e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b";
    const failing = await failingMigration(db);
    const started = blueprint.services.map((s) => start(preDeploy(s, db, commit), db));
    await failing.release(started);
    await expectLeaderCodeAndFollowers76(db, commit, started);
  });
});

// ---------------------------------------------------------------------------------------------------

interface RailwayConfig {
  deploy: { preDeployCommand: string[]; startCommand: string };
}

describe("examples/railway: two services, railway.json and railway.toml, deploy.preDeployCommand an array", () => {
  const services: { name: string; config: RailwayConfig }[] = [
    {
      name: "shop-web",
      config: JSON.parse(
        readFileSync(join(EXAMPLES, "railway/shop-web/railway.json"), "utf8"),
      ) as RailwayConfig,
    },
    {
      name: "shop-admin",
      config: parseToml(
        readFileSync(join(EXAMPLES, "railway/shop-admin/railway.toml"), "utf8"),
      ) as unknown as RailwayConfig,
    },
  ];

  it("each service's preDeployCommand is one command: the orchestrator around the migrations", () => {
    for (const { config } of services) {
      expect(Array.isArray(config.deploy.preDeployCommand)).toBe(true);
      expect(config.deploy.preDeployCommand).toHaveLength(1);
      expect(orchestratorCall(shlexSplit(config.deploy.preDeployCommand[0] ?? ""))).toEqual({
        verb: "run",
        options: [],
        command: ["npm", "run", "migrate"],
      });
      expect(config.deploy.startCommand).not.toMatch(/migrate/);
    }
  });

  function preDeploy(service: (typeof services)[number], db: TestDatabase, commit: string): Instance {
    return {
      name: service.name,
      file: "sh",
      args: ["-c", service.config.deploy.preDeployCommand[0] ?? ""],
      env: {
        RAILWAY_SERVICE_NAME: service.name,
        RAILWAY_SERVICE_ID: `3f1c-${service.name}`,
        RAILWAY_ENVIRONMENT_NAME: "production",
        RAILWAY_GIT_COMMIT_SHA: commit,
        DATABASE_URL: db.url,
        RELEASE_ID_FILE: noReleaseIdFile(),
      },
    };
  }

  it("both services deployed from one commit: one pre-deploy command migrates (RAILWAY_GIT_COMMIT_SHA), both exit 0", async () => {
    const db = await fresh("railway");
    const commit = "5a4b3c2d1e0f5a4b3c2d1e0f5a4b3c2d1e0f5a4b";
    const started = services.map((s) => start(preDeploy(s, db, commit), db));
    expect(["shop-web", "shop-admin"]).toContain(await expectOneRun(db, commit, started));
  });

  it("a failing migration: the leading service exits with its code, the other with 76", async () => {
    const db = await fresh("railway-fail");
    const commit = "6a4b3c2d1e0f5a4b3c2d1e0f5a4b3c2d1e0f5a4b";
    const failing = await failingMigration(db);
    const started = services.map((s) => start(preDeploy(s, db, commit), db));
    await failing.release(started);
    await expectLeaderCodeAndFollowers76(db, commit, started);
  });
});

// ---------------------------------------------------------------------------------------------------

/** hcl2json's shape: every block is a list of bodies. */
interface NomadTask {
  driver: string;
  lifecycle?: { hook: string; sidecar?: boolean }[];
  config: { command: string; args?: string[]; image: string }[];
  env?: Record<string, string>[];
  template?: { data: string; env: boolean }[];
}
interface NomadGroup {
  count: number;
  task: Record<string, NomadTask[]>;
}
interface NomadJob {
  meta: Record<string, string>[];
  update: { healthy_deadline: string; progress_deadline: string }[];
  group: Record<string, NomadGroup[]>;
}

// HashiCorp's HCL parser (Go, as wasm) is asynchronous: the job is parsed before the suite is collected.
const nomadJob = (await parseHcl(
  "shop.nomad.hcl",
  readFileSync(join(EXAMPLES, "nomad/shop.nomad.hcl"), "utf8"),
)) as { job: Record<string, NomadJob[]> };

describe("examples/nomad/shop.nomad.hcl: a prestart task per allocation", () => {
  const parsed = nomadJob;
  const job = parsed.job.shop?.[0] as NomadJob;
  const groups = Object.entries(job.group).map(([name, [group]]) => ({ name, group: group as NomadGroup }));
  const prestart = (group: NomadGroup) =>
    Object.entries(group.task).filter(([, [task]]) => task?.lifecycle?.[0]?.hook === "prestart");

  it("each group has one prestart task (sidecar = false) running the orchestrator; no main task migrates", () => {
    expect(Object.fromEntries(groups.map((g) => [g.name, g.group.count]))).toEqual({ web: 3, admin: 2 });
    for (const { group } of groups) {
      const tasks = prestart(group);
      expect(tasks).toHaveLength(1);
      const [, [task]] = tasks[0] as [string, NomadTask[]];
      expect(task?.lifecycle?.[0]?.sidecar).toBe(false);
      const config = task?.config[0];
      expect(orchestratorCall([config?.command ?? "", ...(config?.args ?? [])])).toEqual({
        verb: "run",
        options: ["--wait-timeout", "9m"],
        command: ["npm", "run", "migrate"],
      });
      // The wait ends before Nomad's healthy_deadline marks the waiting allocation unhealthy.
      expect(job.update[0]?.healthy_deadline).toBe("10m");
      expect(task?.env?.[0]?.RELEASE_ID).toBe("${NOMAD_META_release}");
      for (const [name, [main]] of Object.entries(group.task)) {
        if (main?.lifecycle !== undefined) continue;
        expect(main?.config[0]?.args?.join(" "), name).not.toMatch(/migrate/);
        expect(main?.config[0]?.image).toBe(config?.image);
      }
    }
    expect(job.meta[0]?.release).toBe("${var.release}");
  });

  /** Nomad's runtime interpolation of ${NOMAD_...} in the task's env, for this allocation. */
  function allocation(groupName: string, index: number, db: TestDatabase, release: string): Instance {
    const group = groups.find((g) => g.name === groupName)?.group as NomadGroup;
    const [, [task]] = prestart(group)[0] as [string, NomadTask[]];
    const config = task?.config[0];
    const runtime: Record<string, string> = {
      NOMAD_JOB_NAME: "shop",
      NOMAD_GROUP_NAME: groupName,
      NOMAD_TASK_NAME: "migrate",
      NOMAD_ALLOC_INDEX: String(index),
      NOMAD_ALLOC_NAME: `shop.${groupName}[${index}]`,
      NOMAD_META_release: release,
    };
    const interpolate = (text: string) =>
      text.replace(/\$\{(NOMAD_[A-Za-z0-9_]+)\}/g, (_, name: string) => runtime[name] ?? "");
    const env = Object.fromEntries(Object.entries(task?.env?.[0] ?? {}).map(([k, v]) => [k, interpolate(v)]));
    // The template renders DATABASE_URL from a Nomad Variable into the task's environment.
    expect(task?.template?.[0]?.env).toBe(true);
    expect(task?.template?.[0]?.data).toMatch(/^DATABASE_URL=/);
    return {
      name: runtime.NOMAD_ALLOC_NAME as string,
      file: config?.command ?? "",
      args: config?.args ?? [],
      env: { ...runtime, ...env, DATABASE_URL: db.url, RELEASE_ID_FILE: noReleaseIdFile() },
    };
  }

  const allocations: [string, number][] = [
    ["web", 0],
    ["web", 1],
    ["admin", 0],
  ];

  it("three allocations of two groups start at once: one prestart task migrates (RELEASE_ID from meta), all exit 0", async () => {
    const db = await fresh("nomad");
    const started = allocations.map(([g, i]) => start(allocation(g, i, db, "1.4.2"), db));
    const leader = await expectOneRun(db, "1.4.2", started);
    expect(["shop.web[0]", "shop.web[1]", "shop.admin[0]"]).toContain(leader);
  });

  it("a failing migration: the leading allocation exits with its code, the others with 76", async () => {
    const db = await fresh("nomad-fail");
    const failing = await failingMigration(db);
    const started = allocations.map(([g, i]) => start(allocation(g, i, db, "1.4.3"), db));
    await failing.release(started);
    await expectLeaderCodeAndFollowers76(db, "1.4.3", started);
  });
});

// ---------------------------------------------------------------------------------------------------

interface EcsContainer {
  name: string;
  essential: boolean;
  command: string[];
  environment?: { name: string; value: string }[];
  secrets?: { name: string; valueFrom: string }[];
  dependsOn?: { containerName: string; condition: string }[];
}
interface EcsTaskDefinition {
  family: string;
  containerDefinitions: EcsContainer[];
}

describe("examples/ecs: a one-off run-task leader, then update-service; the service's tasks gate on wait", () => {
  const load = (file: string) =>
    JSON.parse(readFileSync(join(EXAMPLES, "ecs", file), "utf8")) as EcsTaskDefinition;
  const migrateTask = load("migrate-task-definition.json");
  const serviceTask = load("task-definition.json");
  const workflow = parseYaml(readFileSync(join(EXAMPLES, "ecs/deploy.yml"), "utf8")) as {
    jobs: Record<string, { steps: { run?: string; uses?: string }[] }>;
  };
  const migrate = migrateTask.containerDefinitions[0] as EcsContainer;
  const gate = serviceTask.containerDefinitions.find((c) => c.dependsOn === undefined) as EcsContainer;
  const app = serviceTask.containerDefinitions.find((c) => c.dependsOn !== undefined) as EcsContainer;

  it("the one-off task leads; the service's app container starts only after its wait container exits 0", () => {
    expect(migrateTask.containerDefinitions).toHaveLength(1);
    expect(orchestratorCall(migrate.command)).toEqual({
      verb: "run",
      options: ["--role", "leader"],
      command: ["npm", "run", "migrate"],
    });
    expect(orchestratorCall(gate.command)).toEqual({ verb: "wait", options: [], command: [] });
    // SUCCESS (exited 0) cannot be set on an essential container.
    expect(gate.essential).toBe(false);
    expect(app.dependsOn).toEqual([{ containerName: gate.name, condition: "SUCCESS" }]);
    expect(app.command.join(" ")).not.toMatch(/migrate/);
    for (const container of [migrate, gate, app])
      expect(container.secrets?.map((s) => s.name)).toEqual(["DATABASE_URL"]);
  });

  it("the workflow runs the one-off task, then updates the service, then checks the task's exit code", () => {
    const steps = Object.values(workflow.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ""));
    const at = (pattern: RegExp) => steps.findIndex((run) => pattern.test(run));
    const runTask = at(/aws ecs run-task[\s\S]*--task-definition shop-migrate/);
    const update = at(new RegExp(`aws ecs update-service[\\s\\S]*--task-definition ${serviceTask.family}`));
    const exitCode = at(/aws ecs wait tasks-stopped[\s\S]*exitCode/);
    expect(at(/register-task-definition/)).toBeGreaterThanOrEqual(0);
    expect(runTask).toBeGreaterThan(at(/register-task-definition/));
    expect(update).toBeGreaterThan(runTask);
    expect(exitCode).toBeGreaterThan(update);
    expect(steps.join("\n")).toMatch(/--build-arg SOURCE_VERSION="\$GITHUB_SHA"/);
  });

  function container(c: EcsContainer, task: string, db: TestDatabase, idFile: string): Instance {
    const [file = "", ...args] = c.command;
    const environment = Object.fromEntries((c.environment ?? []).map((e) => [e.name, e.value]));
    return {
      name: task,
      file,
      args,
      env: {
        ...environment,
        RELEASE_APP_NAME: environment.RELEASE_APP_NAME ?? task,
        DATABASE_URL: db.url,
        RELEASE_ID_FILE: idFile,
      },
    };
  }
  const serviceTasks = ["shop-web/4f1e", "shop-web/9b2c", "shop-web/c7d3"];

  it("three service tasks start first and wait; the one-off task migrates once; all exit 0", async () => {
    const db = await fresh("ecs");
    const commit = "e1c2s3d4e5f60718293a4b5c6d7e8f9012345678";
    const idFile = stampedImage(commit);
    const gates = serviceTasks.map((task) => start(container(gate, task, db, idFile), db));
    await Promise.all(gates.map((g) => waitForStderr(g.process, /follower; waiting/)));
    const leader = start(container(migrate, "shop-migrate", db, idFile), db);
    expect(await expectOneRun(db, commit, [leader, ...gates])).toBe("shop-migrate");
  });

  it("a failing migration: the one-off task exits with its code, every wait container with 76", async () => {
    const db = await fresh("ecs-fail");
    const commit = "e2c2s3d4e5f60718293a4b5c6d7e8f9012345678";
    const idFile = stampedImage(commit);
    await db.query("CREATE TABLE orders (id integer)");
    const gates = serviceTasks.map((task) => start(container(gate, task, db, idFile), db));
    await Promise.all(gates.map((g) => waitForStderr(g.process, /follower; waiting/)));
    const leader = start(container(migrate, "shop-migrate", db, idFile), db);
    await expectLeaderCodeAndFollowers76(db, commit, [leader, ...gates]);
  });
});
