// The Kubernetes examples: the manifests parse, the Deployment has 3 replicas whose init container runs
// the orchestrator around the migrate command, the app container never migrates, and the Job variant
// leads while the init containers follow. Then the init containers' commands are run for real, as three
// replicas starting at once (and as a Job plus three followers), against a real database.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { EXIT_CODES } from "../../src/core/exit-codes.js";
import { useTestDatabase } from "../harness/database.js";
import { stampReleaseId } from "../../demo/stamp-release-id.js";
import { ROOT, scratchDir, startCli, type StartedCli } from "../support/cli.js";
import { MIGRATIONS, appEnv, readLedger, readMigrated, waitForStderr } from "./platform-support.js";

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: unknown; fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  livenessProbe?: unknown;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    replicas?: number;
    podFailurePolicy?: {
      rules: {
        action: string;
        onExitCodes?: { containerName?: string; operator: string; values: number[] };
        onPodConditions?: { type: string }[];
      }[];
    };
    template: { spec: { initContainers?: Container[]; containers: Container[]; restartPolicy?: string } };
  };
}

function loadManifests(file: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(join(ROOT, "examples/kubernetes", file), "utf8"));
  for (const doc of docs)
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
  return docs.map((doc) => doc.toJS() as Manifest);
}

function words(container: Container): string[] {
  return [...(container.command ?? []), ...(container.args ?? [])];
}

/** The orchestrator's options and the wrapped command, or undefined when the container does not `run` it. */
function orchestratorCall(
  container: Container,
  verb: "run" | "wait" = "run",
): { options: string[]; command: string[] } | undefined {
  const all = words(container);
  const at = all.indexOf("release-orchestrator");
  if (at < 0 || all[at + 1] !== verb) return undefined;
  const rest = all.slice(at + 2);
  const dashes = rest.indexOf("--");
  return dashes < 0
    ? { options: rest, command: [] }
    : { options: rest.slice(0, dashes), command: rest.slice(dashes + 1) };
}

const MIGRATE = ["npm", "run", "migrate"];
const deployment = loadManifests("deployment.yaml");
const jobVariant = loadManifests("migrate-job.yaml");

/**
 * Runs a container's command as its pod would, from this repository (the image's app): `npx
 * release-orchestrator` is this checkout's built CLI, the secret is the test database's URL, the pod
 * name comes from the downward API, and the image's stamped .release-id is `idFile`.
 */
function runContainer(container: Container, pod: string, databaseUrl: string, idFile: string): StartedCli {
  const all = words(container);
  const at = all.indexOf("release-orchestrator");
  const env: Record<string, string | undefined> = { RELEASE_ID_FILE: idFile };
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom?.secretKeyRef !== undefined) env[variable.name] = databaseUrl;
    else if (variable.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[variable.name] = pod;
  }
  expect(all.slice(0, at)).toEqual(["npx", "--no-install"]);
  expect(env.DATABASE_URL).toBe(databaseUrl);
  return startCli(all.slice(at + 1), { cwd: ROOT, env: appEnv(env) });
}

function stampedImage(commit: string): string {
  const dir = scratchDir();
  stampReleaseId({ SOURCE_VERSION: commit }, dir);
  return join(dir, ".release-id");
}

describe("examples/kubernetes/deployment.yaml", () => {
  const db = useTestDatabase("platform-k8s-init");
  const [web, ...others] = deployment;
  const init = web?.spec.template.spec.initContainers ?? [];

  it("is one Deployment with 3 replicas whose init container runs the orchestrator around the migrate command", () => {
    expect(others).toEqual([]);
    expect(web?.apiVersion).toBe("apps/v1");
    expect(web?.kind).toBe("Deployment");
    expect(web?.spec.replicas).toBe(3);
    expect(init).toHaveLength(1);
    const call = orchestratorCall(init[0] as Container);
    expect(call, `the init container runs: ${words(init[0] as Container).join(" ")}`).toBeDefined();
    expect(call?.command).toEqual(MIGRATE);
    expect(call?.options).toEqual([]);
  });

  it("keeps the migrations out of the probed app container", () => {
    for (const container of web?.spec.template.spec.containers ?? []) {
      expect(orchestratorCall(container)).toBeUndefined();
      expect(words(container).join(" ")).not.toMatch(/migrate/);
      expect(container.livenessProbe).toBeDefined();
      expect(container.image).toBe(init[0]?.image);
    }
  });

  it("three replicas starting at once: one init container runs the migrations, the other two wait, all exit 0", async () => {
    const idFile = stampedImage("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    const pods = ["shop-web-7d9f-x2k4p", "shop-web-7d9f-9q8rl", "shop-web-7d9f-m5t7z"];
    const started = pods.map((pod) => runContainer(init[0] as Container, pod, db().url, idFile));
    const runs = await Promise.all(started.map((s) => s.done));
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.stderr).join("\n---\n"),
    ).toEqual([0, 0, 0]);

    const ledger = await readLedger(db(), "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    expect(ledger.attempts).toHaveLength(1);
    expect(ledger.attempts[0]?.status).toBe("succeeded");
    expect(pods).toContain(ledger.attempts[0]?.app);
    expect(ledger.followers.map((f) => f.outcome)).toEqual(["succeeded", "succeeded"]);
    expect(ledger.followers.every((f) => f.attempt_id === ledger.attempts[0]?.id)).toBe(true);
    const migrated = await readMigrated(db());
    expect(migrated.applied).toEqual(MIGRATIONS);
    expect(migrated.backfillEvents).toBe(migrated.orders);
  });
});

describe("examples/kubernetes/migrate-job.yaml", () => {
  const db = useTestDatabase("platform-k8s-job");
  const job = jobVariant.find((m) => m.kind === "Job");
  const web = jobVariant.find((m) => m.kind === "Deployment");
  const jobContainer = job?.spec.template.spec.containers[0] as Container;
  const waitContainer = web?.spec.template.spec.initContainers?.[0] as Container;

  it("has a leader Job (restartPolicy Never) and a 3-replica Deployment whose init containers gate on wait", () => {
    expect(job?.apiVersion).toBe("batch/v1");
    expect(job?.spec.template.spec.restartPolicy).toBe("Never");
    expect(orchestratorCall(jobContainer)).toEqual({ options: ["--role", "leader"], command: MIGRATE });
    expect(web?.spec.replicas).toBe(3);
    expect(orchestratorCall(waitContainer, "wait")).toEqual({ options: [], command: [] });
  });

  it("has a podFailurePolicy built on the exit-code table: FailJob exactly for the codes not worth a retry", () => {
    const rules = job?.spec.podFailurePolicy?.rules ?? [];
    const failJob = rules.filter((r) => r.action === "FailJob" && r.onExitCodes !== undefined);
    expect(failJob).toHaveLength(1);
    expect(failJob[0]?.onExitCodes).toMatchObject({ containerName: jobContainer.name, operator: "In" });
    const noRetry = EXIT_CODES.filter((e) => e.retry === "no" && e.code !== 0).map((e) => e.code);
    expect([...(failJob[0]?.onExitCodes?.values ?? [])].sort((a, b) => a - b)).toEqual(noRetry);
    // Nothing retryable is failed or ignored by exit code: those count against backoffLimit.
    const retryable = EXIT_CODES.filter((e) => e.retry === "yes").map((e) => e.code as number);
    for (const rule of rules)
      for (const code of rule.onExitCodes?.values ?? [])
        expect(retryable, `${code} (${rule.action})`).not.toContain(code);
    expect(
      rules.some((r) => r.action === "Ignore" && r.onPodConditions?.[0]?.type === "DisruptionTarget"),
    ).toBe(true);
  });

  it("followers that start first wait for the Job, which runs the migrations once; all exit 0", async () => {
    const commit = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
    const idFile = stampedImage(commit);
    const followers = ["shop-web-5c8b-a1", "shop-web-5c8b-b2", "shop-web-5c8b-c3"].map((pod) =>
      runContainer(waitContainer, pod, db().url, idFile),
    );
    await Promise.all(followers.map((f) => waitForStderr(f.process, /follower; waiting/)));
    const leader = runContainer(jobContainer, "shop-migrate-1-4-2-kx7vq", db().url, idFile);
    const runs = await Promise.all([leader, ...followers].map((s) => s.done));
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.stderr).join("\n---\n"),
    ).toEqual([0, 0, 0, 0]);

    const ledger = await readLedger(db(), commit);
    expect(ledger.attempts).toEqual([
      { id: expect.any(Number) as number, app: "shop-migrate-1-4-2-kx7vq", status: "succeeded" },
    ]);
    expect(ledger.followers).toHaveLength(3);
    expect(
      ledger.followers.every((f) => f.outcome === "succeeded" && f.attempt_id === ledger.attempts[0]?.id),
    ).toBe(true);
    const migrated = await readMigrated(db());
    expect(migrated.applied).toEqual(MIGRATIONS);
    expect(migrated.backfillEvents).toBe(migrated.orders);
  });
});
