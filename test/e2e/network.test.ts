// The network to the database cut while the leader runs: its ledger session goes through a TCP proxy that
// we freeze (packets stop, nothing is closed). The leader cannot renew its lease, so it stops its
// command and exits 77 within seconds, before its lease ends; a waiting process takes over only once the
// lease has expired by the database clock: never two commands alive at once.

import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../harness/database.js";
import { ROOT, sleep, startCli } from "../support/cli.js";
import { WAITING, waitForStderr } from "../support/wait.js";

const HOLD = join(ROOT, "test/fixtures/hold.mjs");
const db = useTestDatabase("network");

interface Proxy {
  url: string;
  freeze(): void;
  /** Closes every proxied connection: the server sees its sessions end. */
  cut(): void;
  close(): Promise<void>;
}

async function startProxy(targetUrl: string): Promise<Proxy> {
  const target = new URL(targetUrl);
  const sockets: Socket[] = [];
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    sockets.push(client, upstream);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on("data", (chunk) => {
        if (!frozen) to.write(chunk);
      });
      // A cut network carries no FIN either: while frozen, a side that closes is not seen by the other.
      from.on("error", () => {
        if (!frozen) to.destroy();
      });
      from.on("close", () => {
        if (!frozen) to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no proxy port");
  const url = new URL(targetUrl);
  url.port = String(address.port);
  return {
    url: url.toString(),
    freeze: () => {
      frozen = true;
    },
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const proxies: Proxy[] = [];
afterAll(async () => {
  for (const proxy of proxies) {
    proxy.cut();
    await proxy.close();
  }
});

describe("network cut", () => {
  it("the leader notices a silent network within seconds, stops its command, exits 77; the next runs only after", async () => {
    const proxy = await startProxy(db().url);
    proxies.push(proxy);
    // The lock goes through the proxy; the command and the waiter talk to the database directly.
    const leader = startCli(
      ["run", "--release-id", "net-1", "--kill-grace", "1s", "--", process.execPath, HOLD],
      {
        env: {
          DATABASE_URL: db().url,
          RELEASE_DATABASE_URL: proxy.url,
          RELEASE_APP_NAME: "a",
          SLEEP_MS: "60000",
        },
      },
    );
    for (
      let i = 0;
      i < 200 &&
      (
        await db()
          .query("SELECT 1 FROM runs")
          .catch(() => [])
      ).length === 0;
      i++
    )
      await sleep(50);
    const waiter = startCli(
      ["run", "--release-id", "net-1", "--kill-grace", "1s", "--", process.execPath, HOLD],
      {
        env: { DATABASE_URL: db().url, RELEASE_APP_NAME: "b", SLEEP_MS: "100" },
      },
    );
    await waitForStderr(waiter.process, WAITING);
    const frozenAt = Date.now();
    proxy.freeze();
    const runA = await leader.done;
    const noticedMs = runA.exitedAt - frozenAt;
    process.stderr.write(`[network.test] the leader exited ${noticedMs} ms after the network froze\n`);
    expect(runA.exitCode, runA.stderr).toBe(77);
    expect(runA.stderr).toMatch(/ownership was lost: (could not renew the lease|the lock session)/);
    // The first command was stopped before the leader exited (its kill grace is 1 s).
    const [first] = await db().query<{ ended_at: Date | null; how: string | null; os_pid: number }>(
      "SELECT ended_at, how, os_pid FROM runs ORDER BY id LIMIT 1",
    );
    expect(first?.how).toBe("sigterm");
    expect(noticedMs).toBeLessThan(20_000); // detection itself is ~4 s; this bounds a hang, it is not a timing claim
    proxy.cut();
    const runB = await waiter.done;
    expect(runB.exitCode, runB.stderr).toBe(0);
    const rows = await db().query<{ app: string; started_at: Date; ended_at: Date }>(
      "SELECT app, started_at, ended_at FROM runs ORDER BY id",
    );
    expect(rows.map((r) => r.app)).toEqual(["a", "b"]);
    expect(rows[1]!.started_at.getTime()).toBeGreaterThanOrEqual(rows[0]!.ended_at.getTime());
  }, 90_000);
});
