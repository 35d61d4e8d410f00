// doctor's checks as data, each run over a fake probe (no server): what each one finds, and that the
// server checks stay silent when the connection failed.

import { describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../src/core/config.js";
import type { Attempt } from "../../src/core/records.js";
import { CHECKS, runChecks, type Finding } from "../../src/operator/doctor/checks.js";
import type { Probe, ServerProbe } from "../../src/operator/doctor/probe.js";

function config(flags: Record<string, unknown> = {}, env: Record<string, string> = {}): Config {
  const parsed = parseConfig({
    flags,
    argvCommand: [],
    env: { DATABASE_URL: "postgres://app:Correct-Horse-9x@db.example.com:5432/app", ...env },
    dotenv: {},
    purpose: "inspect",
  });
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  return parsed.config;
}

const server = (over: Partial<ServerProbe> = {}): ServerProbe => ({
  version: "15.18",
  versionNum: 150018,
  user: "app",
  ssl: true,
  ledger: { schemaExists: true, usable: true, canCreate: true, version: 2, readOnly: false, complete: true },
  proven: true,
  leaked: [],
  holder: undefined,
  stalled: [],
  guard: { superuser: false, signalBackend: false, lockTimeoutMs: 0 },
  ...over,
});

const probe = (over: Partial<Probe> = {}): Probe => ({
  config: config(),
  release: { id: "3f2c1a9", source: "RELEASE_ID" },
  server: server(),
  ...over,
});

const find = (findings: Finding[], check: string) => findings.filter((f) => f.check === check);

describe("doctor's checks", () => {
  it("are data: a list of named checks, each a function of the probe", () => {
    expect(CHECKS.map((c) => c.name)).toEqual([
      "role",
      "release id",
      "password",
      "connection",
      "server version",
      "tls",
      "ledger",
      "primary",
      "session",
      "lock",
      "stalled leader",
      "lock guard",
    ]);
  });

  it("a healthy setup passes every check and warns about nothing", () => {
    const findings = runChecks(probe());
    expect(findings.filter((f) => f.verdict !== "pass")).toEqual([]);
    expect(findings.map((f) => f.check)).toEqual([
      "role",
      "release id",
      "connection",
      "server version",
      "tls",
      "ledger",
      "session",
      "lock",
      "lock guard",
    ]);
  });

  it("role: says where the role came from (config.roleSource), warns for a skipping follower", () => {
    expect(find(runChecks(probe({ config: config({}, { RUN_MIGRATIONS: "true" }) })), "role")).toEqual([
      {
        check: "role",
        verdict: "pass",
        message: "Role leader (from RUN_MIGRATIONS=true), follower mode wait.",
      },
    ]);
    const skip = config({ role: "follower", "follower-mode": "skip" });
    expect(find(runChecks(probe({ config: skip })), "role")[0]).toMatchObject({
      verdict: "warn",
      message: expect.stringMatching(/^Role follower in skip mode \(from --role\)/) as unknown,
    });
  });

  it("release id: a bad source fails; none warns, and fails for a waiting follower", () => {
    expect(
      find(
        runChecks(probe({ release: { error: "SOURCE_VERSION is set but is not a release id" } })),
        "release id",
      )[0],
    ).toMatchObject({ verdict: "fail", message: "SOURCE_VERSION is set but is not a release id" });
    expect(find(runChecks(probe({ release: undefined })), "release id")[0]?.verdict).toBe("warn");
    const follower = config({ role: "follower" });
    expect(find(runChecks(probe({ config: follower, release: undefined })), "release id")[0]?.verdict).toBe(
      "fail",
    );
  });

  it("password: warns only for one that cannot be told from ordinary words", () => {
    const weak = config({}, { DATABASE_URL: "postgres://app:migrate@db/app" });
    expect(find(runChecks(probe({ config: weak })), "password")[0]).toMatchObject({
      verdict: "warn",
      message: expect.stringMatching(/^The database password is short or a plain word/) as unknown,
    });
    expect(find(runChecks(probe()), "password")).toEqual([]);
  });

  it("a failed connection is one failure, and no server check speaks", () => {
    const findings = runChecks(
      probe({ server: { error: "Nothing accepted connections at db:5432 (tried for 2 s)." } }),
    );
    expect(find(findings, "connection")).toEqual([
      {
        check: "connection",
        verdict: "fail",
        message: "Nothing accepted connections at db:5432 (tried for 2 s).",
        fix: "Fix the database URL or the network, then run doctor again.",
      },
    ]);
    expect(findings.map((f) => f.check)).toEqual(["role", "release id", "connection"]);
  });

  it("server version: 12 and later pass, 9.6 to 11 warn, older fail", () => {
    const verdict = (versionNum: number) =>
      find(runChecks(probe({ server: server({ versionNum }) })), "server version")[0]?.verdict;
    expect([verdict(150018), verdict(120000), verdict(110005), verdict(90600), verdict(90500)]).toEqual([
      "pass",
      "pass",
      "warn",
      "warn",
      "fail",
    ]);
  });

  it("tls: encrypted passes, local unencrypted passes, remote unencrypted warns", () => {
    expect(find(runChecks(probe()), "tls")[0]?.verdict).toBe("pass");
    const local = config({}, { DATABASE_URL: "postgres://app:Correct-Horse-9x@localhost/app" });
    expect(
      find(runChecks(probe({ config: local, server: server({ ssl: false }) })), "tls")[0]?.message,
    ).toMatch(/local and not encrypted/);
    expect(find(runChecks(probe({ server: server({ ssl: false }) })), "tls")[0]).toMatchObject({
      verdict: "warn",
      message: "The connection to db.example.com is not encrypted.",
    });
  });

  it("ledger: every state of the schema says what it is and what to do", () => {
    const ledger = (over: Partial<ServerProbe["ledger"]>) =>
      find(runChecks(probe({ server: server({ ledger: { ...server().ledger, ...over } }) })), "ledger")[0];
    expect(ledger({})).toMatchObject({
      verdict: "pass",
      message: "The ledger exists in schema release_orchestrator.",
    });
    expect(ledger({ version: 1 })?.message).toMatch(/0\.1\.0's; the next run upgrades it/);
    expect(ledger({ complete: false })).toMatchObject({
      verdict: "pass",
      message:
        "The ledger exists in schema release_orchestrator (0.2.0's; the next run adds the lock guard's tries and the plans table).",
    });
    expect(ledger({ usable: false })).toMatchObject({
      verdict: "fail",
      message: "This user may not use the ledger schema release_orchestrator.",
    });
    expect(ledger({ version: "foreign" })).toMatchObject({
      verdict: "fail",
      message: expect.stringMatching(/not a release-orchestrator ledger/) as unknown,
    });
    expect(ledger({ version: 3 })).toMatchObject({
      verdict: "fail",
      fix: "Upgrade release-orchestrator on every app.",
    });
    expect(ledger({ version: "missing", schemaExists: false, canCreate: true })?.verdict).toBe("pass");
    expect(ledger({ version: "missing", schemaExists: false, canCreate: false, usable: null })).toMatchObject(
      { verdict: "fail", message: "This user may not create the ledger schema release_orchestrator." },
    );
  });

  it("primary: a read-only server fails", () => {
    expect(
      find(
        runChecks(probe({ server: server({ ledger: { ...server().ledger, readOnly: true } }) })),
        "primary",
      )[0]?.verdict,
    ).toBe("fail");
  });

  it("session: direct and pooled both pass; the pooled one names the pause window and the direct URL that closes it", () => {
    expect(find(runChecks(probe()), "session")[0]?.message).toMatch(/a session of its own/);
    const pooled = find(runChecks(probe({ server: server({ proven: false }) })), "session")[0];
    expect(pooled?.verdict).toBe("pass");
    expect(pooled?.message).toMatch(/the ledger's lease alone decides ownership/);
    expect(pooled?.message).toMatch(/has its command stopped by its supervisor before its lease ends/);
    expect(pooled?.fix).toMatch(/RELEASE_DATABASE_URL/);
  });

  it("lock: a leak warns with the statement that ends it; otherwise free or held by the running leader", () => {
    const leak = {
      pid: 4242,
      applicationName: "old",
      state: "idle",
      backendStart: null,
      stateChange: null,
      clientAddr: "10.0.0.5",
    };
    expect(find(runChecks(probe({ server: server({ leaked: [leak] }) })), "lock leak")[0]).toMatchObject({
      verdict: "warn",
      fix: expect.stringMatching(/pg_terminate_backend\(4242\)/) as unknown,
    });
    expect(find(runChecks(probe()), "lock")[0]?.message).toMatch(/is free\.$/);
    expect(
      find(runChecks(probe({ server: server({ holder: { ...leak, pid: 7 } }) })), "lock")[0]?.message,
    ).toMatch(/held by a running attempt's leader \(backend pid 7\)/);
  });

  it("stalled leader: warns, naming the attempt, its lock session and the way out", () => {
    const attempt = {
      id: 3,
      app: "s-app",
      pid: 4211,
      host: "web.1",
      task: "migrate",
      releaseId: "3f2c1a9",
      lockBackendPid: 2864,
      lease: { endsAt: "", leftMs: -14_000, renewedMsAgo: 40_000, sessionGone: false, orphans: [] },
    } as unknown as Attempt;
    const [finding] = find(runChecks(probe({ server: server({ stalled: [attempt] }) })), "stalled leader");
    expect(finding?.verdict).toBe("warn");
    expect(finding?.message).toMatch(
      /^Attempt #3 by s-app \(pid 4211 on web\.1\) of migrate for 3f2c1a9: its leader's lock session \(backend pid 2864\) is connected but has not renewed the lease for 40 s: paused or frozen\?/,
    );
    expect(finding?.message).toMatch(/--orphan-sessions terminate, or SELECT pg_terminate_backend\(2864\)/);
  });

  it("lock guard: on by default, saying who it may cancel; off warns; a lock_timeout that acts first warns", () => {
    const guard = (over: Partial<ServerProbe["guard"]>, p: Partial<Probe> = {}) =>
      find(
        runChecks(
          probe({
            server: server({ guard: { superuser: false, signalBackend: false, lockTimeoutMs: 0, ...over } }),
            ...p,
          }),
        ),
        "lock guard",
      );
    const [plain] = guard({});
    expect(plain?.verdict).toBe("pass");
    expect(plain?.message).toMatch(
      /waits 3 s for a table lock .*\(up to 5 tries\); app may cancel the command's statements only when the command connects as app too/,
    );
    expect(guard({ signalBackend: true })[0]?.message).toMatch(/member of pg_signal_backend/);
    expect(guard({ superuser: true })[0]?.message).toMatch(/is a superuser/);
    const off = guard({}, { config: config({}, { RELEASE_LOCK_WAIT: "off" }) });
    expect(off.map((f) => f.verdict)).toEqual(["warn"]);
    expect(off[0]?.message).toMatch(/guard is off/);
    const early = guard({ lockTimeoutMs: 2000 });
    expect(early.map((f) => f.verdict)).toEqual(["pass", "warn"]);
    expect(early[1]?.message).toMatch(/lock_timeout = 2 s for app, no longer than --lock-wait \(3 s\)/);
    expect(early[1]?.fix).toMatch(/ALTER ROLE app SET lock_timeout/);
    expect(guard({ lockTimeoutMs: 30_000 }).map((f) => f.verdict)).toEqual(["pass", "pass"]);
  });
});
