// Kubernetes with a Python image and no Node (examples/kubernetes/python/): the Dockerfiles and manifests
// are parsed and checked (no container engine runs here), then what the images and init containers do
// is done for real: the binary copied as COPY --from= or the copying init container would copy it, and
// the migrate init container's command run by three replicas at once against PostgreSQL, with the
// standalone binary, a Django project as the app, and no node on PATH.

import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { useFreshDatabases } from "../harness/database.js";
import { BINARY, ROOT, cleanEnv, cliCommand, pathWithoutNode, scratchDir } from "../support/cli.js";
import { appEnv, djangoProject, findDjangoPython } from "./platform-support.js";

const IMAGE = "ghcr.io/release-orchestrator/release-orchestrator";
const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

interface Instruction {
  keyword: string;
  args: string;
}

/** A Dockerfile's instructions (one per line; comments and blank lines dropped). */
function parseDockerfile(path: string): Instruction[] {
  return readFileSync(join(ROOT, path), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"))
    .map((line) => {
      const match = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
      if (match?.[1] === undefined || match[2] === undefined)
        throw new Error(`${path}: cannot read: ${line}`);
      return { keyword: match[1], args: match[2] };
    });
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: unknown; fieldRef?: { fieldPath: string } };
  }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface Deployment {
  kind: string;
  spec: {
    replicas: number;
    template: {
      spec: {
        volumes?: { name: string; emptyDir?: unknown }[];
        initContainers: Container[];
        containers: Container[];
      };
    };
  };
}

function loadDeployment(file: string): Deployment {
  const docs = parseAllDocuments(readFileSync(join(ROOT, "examples/kubernetes/python", file), "utf8"));
  expect(docs).toHaveLength(1);
  for (const doc of docs) expect(doc.errors.map((e) => e.message)).toEqual([]);
  return docs[0]!.toJS() as Deployment;
}

const words = (c: Container) => [...(c.command ?? []), ...(c.args ?? [])];
const MIGRATE = ["python", "manage.py", "migrate", "--noinput"];

/** The container's environment as the pod gets it: the secret is the test database, the pod's name. */
function podEnv(container: Container, pod: string, databaseUrl: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom?.secretKeyRef !== undefined) env[variable.name] = databaseUrl;
    else if (variable.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[variable.name] = pod;
  }
  return env;
}

/** A path inside a container, on this machine: the longest mount (or image root) that holds it. */
function hostPath(path: string, mounts: Record<string, string>): string {
  const at = Object.keys(mounts)
    .filter((mount) => path === mount || path.startsWith(`${mount.replace(/\/$/, "")}/`))
    .sort((a, b) => b.length - a.length)[0];
  if (at === undefined) throw new Error(`${path} is in no mount`);
  return join(mounts[at]!, path.slice(at.length));
}

/** Our image's filesystem, as docker/Dockerfile builds it: the binary at the path it COPYs it to. */
function ourImage(): { root: string; binaryPath: string } {
  cliCommand("binary"); // says how to build it when it is missing
  const copy = parseDockerfile("docker/Dockerfile").filter((i) => i.keyword === "COPY");
  expect(copy).toHaveLength(1);
  const [source, target] = copy[0]!.args.split(/\s+/) as [string, string];
  expect(source).toBe("dist/bin/release-orchestrator");
  const root = scratchDir();
  mkdirSync(dirname(join(root, target)), { recursive: true });
  copyFileSync(join(ROOT, source), join(root, target));
  execFileSync("chmod", ["755", join(root, target)]);
  return { root, binaryPath: target };
}

/** Runs the migrate init container of `replicas` pods at once, in the Django project, without node. */
async function rollout(
  migrate: Container,
  databaseUrl: string,
  program: string,
  extraPath: string[],
): Promise<{ exitCode: number; all: string }[]> {
  const project = djangoProject(python ?? "", pathWithoutNode());
  // The image's WORKDIR holds the .release-id stamped by `docker build --build-arg SOURCE_VERSION=...`.
  writeFileSync(join(project.dir, ".release-id"), "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c\n");
  const pods = ["shop-admin-6b7c-a", "shop-admin-6b7c-b", "shop-admin-6b7c-c"];
  const runs = await Promise.all(
    pods.map((pod) =>
      execa(program, words(migrate).slice(1), {
        cwd: project.dir,
        env: {
          ...cleanEnv(appEnv(podEnv(migrate, pod, databaseUrl))),
          PATH: [...extraPath, project.path].join(":"),
        },
        extendEnv: false,
        reject: false,
        all: true,
        stdin: "ignore",
        timeout: 60_000,
      }),
    ),
  );
  return runs.map((r) => ({ exitCode: r.exitCode ?? -1, all: String(r.all) }));
}

const python = findDjangoPython();

describe("docker/Dockerfile: the release-orchestrator image", () => {
  it("carries the standalone binary on a glibc base, for COPY --from= and init containers", () => {
    const instructions = parseDockerfile("docker/Dockerfile");
    expect(instructions[0]?.keyword).toBe("FROM");
    expect(instructions[0]?.args).toMatch(/^busybox:[\d.]+-glibc$/);
    expect(instructions.filter((i) => i.keyword === "COPY").map((i) => i.args)).toEqual([
      "dist/bin/release-orchestrator /release-orchestrator",
    ]);
  });
});

describe("examples/kubernetes/python/Dockerfile", () => {
  const instructions = parseDockerfile("examples/kubernetes/python/Dockerfile");
  /** The build step that checks the binary runs in this image. */
  const check = () =>
    instructions.find((i) => i.keyword === "RUN" && i.args.startsWith("release-orchestrator "))?.args ?? "";

  it("is a glibc Python image without Node that copies the binary from our image of this version", () => {
    expect(instructions[0]?.args).toMatch(/^python:[\d.]+-slim$/);
    // Nothing installs or runs Node (the check's message may name the npm package, as the alternative).
    const text = instructions
      .filter((i) => i.args !== check())
      .map((i) => `${i.keyword} ${i.args}`)
      .join("\n");
    expect(text).not.toMatch(/\b(node|npm|npx)\b/);
    const copies = instructions.filter((i) => i.keyword === "COPY" && i.args.startsWith("--from="));
    expect(copies.map((i) => i.args)).toEqual([
      `--from=${IMAGE}:${version} /release-orchestrator /usr/local/bin/release-orchestrator`,
    ]);
    expect(check().startsWith("release-orchestrator --version || ")).toBe(true);
  });

  it("its build step `release-orchestrator --version` runs the copied binary with no node on PATH", async () => {
    const ours = ourImage();
    const app = scratchDir();
    const [, from, to] = /^--from=\S+ (\S+) (\S+)$/.exec(
      instructions.find((i) => i.args.startsWith("--from="))!.args,
    ) as unknown as [string, string, string];
    expect(from).toBe(ours.binaryPath);
    mkdirSync(dirname(join(app, to)), { recursive: true });
    copyFileSync(join(ours.root, from), join(app, to));
    execFileSync("chmod", ["755", join(app, to)]);
    const result = await execa("sh", ["-c", check()], {
      env: { PATH: `${join(app, dirname(to))}:${pathWithoutNode()}` },
      extendEnv: false,
    });
    expect(result.stdout.trim()).toBe(version);
  });

  it("where the binary cannot start (musl: the shell says only `not found`), the step fails with a sentence", async () => {
    const result = await execa("sh", ["-c", check()], {
      env: { PATH: pathWithoutNode() },
      extendEnv: false,
      reject: false,
    });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/not found/);
    expect(result.stderr).toMatch(
      /release-orchestrator cannot run in this image: the standalone binary needs glibc >= 2\.28 .*on Alpine \(musl\) use the npm package/,
    );
  });
});

describe.skipIf(python === undefined)("examples/kubernetes/python: three Django replicas, no Node", () => {
  const freshDb = useFreshDatabases("platform-k8s-python");

  /** The backfill migration (0002) ran once; every pod exited 0; the ledger has one attempt. */
  async function expectOneExecution(
    db: Awaited<ReturnType<typeof freshDb>>,
    runs: { exitCode: number; all: string }[],
  ) {
    expect(
      runs.map((r) => r.exitCode),
      runs.map((r) => r.all).join("\n---\n"),
    ).toEqual([0, 0, 0]);
    expect(await db.query("SELECT count(*)::int AS n FROM shop_orderevent")).toEqual([{ n: 1 }]);
    expect(
      runs
        .map((r) => r.all)
        .join("\n")
        .match(/Applying shop\.0002_backfill/g),
    ).toHaveLength(1);
    const attempts = await db.query<{ status: string }>("SELECT status FROM release_orchestrator.attempts");
    expect(attempts).toEqual([{ status: "succeeded" }]);
  }

  it("deployment.yaml: the binary from the image (COPY --from=) runs the migrations once for three replicas", async () => {
    const deployment = loadDeployment("deployment.yaml");
    expect(deployment.kind).toBe("Deployment");
    expect(deployment.spec.replicas).toBe(3);
    const [migrate, ...others] = deployment.spec.template.spec.initContainers;
    expect(others).toEqual([]);
    expect(words(migrate!)).toEqual(["release-orchestrator", "run", "--", ...MIGRATE]);
    for (const c of deployment.spec.template.spec.containers) {
      expect(c.image).toBe(migrate!.image);
      expect(words(c).join(" ")).not.toMatch(/migrate|release-orchestrator/);
    }
    // The app image as its Dockerfile builds it: the binary in /usr/local/bin, on the image's PATH.
    const image = scratchDir();
    mkdirSync(join(image, "usr/local/bin"), { recursive: true });
    copyFileSync(BINARY, join(image, "usr/local/bin/release-orchestrator"));
    execFileSync("chmod", ["755", join(image, "usr/local/bin/release-orchestrator")]);
    const db = await freshDb("copy-from");
    const runs = await rollout(migrate!, db.url, "release-orchestrator", [join(image, "usr/local/bin")]);
    await expectOneExecution(db, runs);
  });

  it("deployment-emptydir.yaml: an init container copies the binary into an emptyDir, the next one runs it; once for three replicas", async () => {
    const deployment = loadDeployment("deployment-emptydir.yaml");
    const volumes = deployment.spec.template.spec.volumes ?? [];
    expect(volumes).toHaveLength(1);
    expect(volumes[0]?.emptyDir).toBeDefined();
    const [install, migrate, ...others] = deployment.spec.template.spec.initContainers;
    expect(others).toEqual([]);
    expect(install!.image).toBe(`${IMAGE}:${version}`);
    expect(migrate!.image).toBe(deployment.spec.template.spec.containers[0]?.image);
    const mount = (c: Container) => c.volumeMounts?.find((m) => m.name === volumes[0]?.name)?.mountPath;
    expect(mount(install!)).toBeDefined();
    expect(mount(migrate!)).toBe(mount(install!));

    // The install container, run as in its pod: our image's root and the emptyDir mapped onto this machine.
    const ours = ourImage();
    const emptyDir = scratchDir();
    const installMounts = { "/": ours.root, [mount(install!)!]: emptyDir };
    const [cp, ...cpArgs] = words(install!);
    expect(cp).toBe("cp");
    execFileSync(
      "cp",
      cpArgs.map((arg) => hostPath(arg, installMounts)),
    );

    // The migrate container runs the copied file, in the Python image, where there is no node.
    expect(words(migrate!).slice(1)).toEqual(["run", "--", ...MIGRATE]);
    const program = hostPath(words(migrate!)[0]!, { [mount(migrate!)!]: emptyDir });
    const db = await freshDb("emptydir");
    const runs = await rollout(migrate!, db.url, program, []);
    await expectOneExecution(db, runs);
  });
});
