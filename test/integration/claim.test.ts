// The claim's scope (run/claim.ts) driven directly against PostgreSQL: it takes the lease and the
// lock, fires `lost` when the lock's backend is killed, refuses to record an attempt that was taken
// over, records an attempt nobody recorded, and always gives the lock back.

import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/core/config.js";
import { createReporter } from "../../src/core/reporter.js";
import { abandon } from "../../src/db/ledger/attempts.js";
import { withClaim } from "../../src/run/claim.js";
import { createRunContext, type RunContext } from "../../src/run/context.js";
import { Link } from "../../src/run/link.js";
import { useFreshDatabases, type TestDatabase } from "../harness/database.js";
import { waitFor } from "../support/wait.js";

const freshDb = useFreshDatabases("claim");
const links: Link[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((link) => link.close()));
});

/** A run's context for this database, with the ledger made ready by a first read, and its link. */
async function setUp(
  db: TestDatabase,
  killGrace = "20s",
): Promise<{ ctx: RunContext; link: Link; lines: string[] }> {
  const parsed = parseConfig({
    flags: { "release-id": "c1", "kill-grace": killGrace, app: "scope" },
    argvCommand: ["true"],
    env: { DATABASE_URL: db.url },
    dotenv: {},
  });
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  const lines: string[] = [];
  const reporter = createReporter({ write: (text) => lines.push(text), tty: false, color: false });
  // No command runs here: the supervisor is never started.
  const supervisor = { file: process.execPath, args: [] };
  const ctx = createRunContext(
    { config: parsed.config, env: {}, cwd: process.cwd(), reporter, supervisor },
    "scope",
    {
      id: "c1",
      source: "test",
    },
  );
  const link = new Link(ctx);
  links.push(link);
  const { ensureLedger } = await import("../../src/db/ledger/schema.js");
  await link.step((client) => ensureLedger(client, ctx.ledger));
  return { ctx, link, lines };
}

async function attemptRow(db: TestDatabase, id: number) {
  const [row] = await db.query<{ status: string; lock_backend_pid: number | null }>(
    "SELECT status, lock_backend_pid FROM release_orchestrator.attempts WHERE id = $1",
    [id],
  );
  return row;
}

async function lockHolders(db: TestDatabase): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return row?.n ?? 0;
}

describe("the claim's scope", () => {
  it("fires lost when its lock's backend is killed, and records the attempt lost", async () => {
    const db = await freshDb("lock-killed");
    const { ctx, link } = await setUp(db);
    const seen = await withClaim(ctx, link, async (claim) => {
      expect(claim.lockHeld).toBe(true);
      const row = await attemptRow(db, claim.id);
      expect(row?.status).toBe("running");
      await db.query("SELECT pg_terminate_backend($1)", [row?.lock_backend_pid]);
      await waitFor("the loss to fire", () => (claim.lost.aborted ? true : undefined));
      return { id: claim.id, reason: String(claim.lost.reason) };
    });
    expect(seen?.value.reason).toMatch(/^the lock session (failed \(.*\)|closed)$/);
    // Nothing recorded it inside the scope: the scope's end recorded it lost.
    expect((await attemptRow(db, seen!.value.id))?.status).toBe("lost");
  });

  it("a stalled owner (lease out, lock session alive) is not taken over, renews its lease again and records its outcome", async () => {
    const db = await freshDb("stalled");
    const { ctx, link } = await setUp(db);
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      const recorded = await withClaim(ctx, link, async (claim) => {
        // Its lease ran out (by the database clock), as when its process was paused; its lock session lives.
        await db.query(
          "UPDATE release_orchestrator.attempts SET heartbeat_at = clock_timestamp() - interval '1 hour' WHERE id = $1",
          [claim.id],
        );
        expect(await abandon(other, ctx.ledger, claim.id)).toBe(false);
        // Its next renewal (by the session that holds the lock) brings the lease back: still its own.
        await waitFor("the lease renewed again", async () => {
          const [row] = await db.query<{ fresh: boolean }>(
            "SELECT heartbeat_at > clock_timestamp() - interval '1 minute' AS fresh FROM release_orchestrator.attempts WHERE id = $1",
            [claim.id],
          );
          return row?.fresh === true ? true : undefined;
        });
        expect(claim.lost.aborted).toBe(false);
        return claim.finish({ status: "succeeded", exitCode: 0, signal: null, outputTail: "" });
      });
      expect(recorded?.value).toBe("recorded");
    } finally {
      await other.end();
    }
  });

  it("refuses to record an attempt that was taken over once its lock session was gone, and gives its lock back", async () => {
    const db = await freshDb("taken-over");
    const { ctx, link } = await setUp(db);
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      const recorded = await withClaim(ctx, link, async (claim) => {
        // Its lease ran out and its lock session was ended: another process may take it over.
        await db.query(
          "UPDATE release_orchestrator.attempts SET heartbeat_at = clock_timestamp() - interval '1 hour' WHERE id = $1",
          [claim.id],
        );
        const row = await attemptRow(db, claim.id);
        await db.query("SELECT pg_terminate_backend($1)", [row?.lock_backend_pid]);
        await waitFor("the takeover", async () =>
          (await abandon(other, ctx.ledger, claim.id)) ? true : undefined,
        );
        await waitFor("the loss to fire", () => (claim.lost.aborted ? true : undefined));
        return claim.finish({ status: "succeeded", exitCode: 0, signal: null, outputTail: "" });
      });
      expect(recorded?.value).toBe("not-ours");
    } finally {
      await other.end();
    }
    await waitFor("the lock to be released", async () => ((await lockHolders(db)) === 0 ? true : undefined));
  });

  it("records what the lead recorded once, and releases the lock when the scope ends", async () => {
    const db = await freshDb("recorded");
    const { ctx, link } = await setUp(db);
    const result = await withClaim(ctx, link, async (claim) => {
      expect(await lockHolders(db)).toBe(1);
      const first = await claim.finish({ status: "succeeded", exitCode: 0, signal: null, outputTail: "ok" });
      const again = await claim.finish({ status: "failed", exitCode: 1, signal: null, outputTail: "" });
      return { id: claim.id, first, again };
    });
    expect(result?.value).toMatchObject({ first: "recorded", again: "recorded" });
    expect((await attemptRow(db, result!.value.id))?.status).toBe("succeeded");
    expect(await lockHolders(db)).toBe(0);
  });

  it("a claim that loses (the release already succeeded) runs nothing", async () => {
    const db = await freshDb("lost-claim");
    const { ctx, link } = await setUp(db);
    await withClaim(ctx, link, (claim) =>
      claim.finish({ status: "succeeded", exitCode: 0, signal: null, outputTail: "" }),
    );
    let ran = false;
    const second = await withClaim(ctx, link, () => {
      ran = true;
      return Promise.resolve();
    });
    expect(second).toBeUndefined();
    expect(ran).toBe(false);
  });
});
