// connect() against a server that accepts and never answers (a silent network): an abort ends the
// connection being made at once, so nothing keeps the process alive after its run has ended (the lock
// guard's connection, stopped with its command, kept a leader alive 30 s after it exited 77).

import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../../src/db/connect.js";
import { DatabaseUnavailableError } from "../../src/core/errors.js";

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A TCP server that accepts connections and never says a word; `open()` counts the live ones. */
async function silentServer(): Promise<{ url: string; open: () => number }> {
  const live = new Set<Socket>();
  const server = createServer((socket) => {
    live.add(socket);
    sockets.push(socket);
    // Read (and ignore) what the client sends: a paused socket would never see the client close.
    socket.resume();
    socket.on("close", () => live.delete(socket));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `postgres://app:pw@127.0.0.1:${port}/app`, open: () => live.size };
}

describe("connect", () => {
  it("an abort while a connection is being made to a silent server ends it at once", async () => {
    const silent = await silentServer();
    const stop = new AbortController();
    const connecting = connect({
      url: silent.url,
      applicationName: "test",
      timeoutMs: 60_000,
      signal: stop.signal,
    });
    // The socket is open and waiting for the server's answer.
    for (let i = 0; i < 200 && silent.open() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(silent.open()).toBe(1);
    stop.abort();
    // Without the abort this would wait for connectionTimeoutMillis (10 s), past this test's limit.
    await expect(connecting).rejects.toBeInstanceOf(DatabaseUnavailableError);
    for (let i = 0; i < 200 && silent.open() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(silent.open(), "the socket is closed").toBe(0);
  }, 5_000);

  it("an abort given before connecting opens nothing", async () => {
    const silent = await silentServer();
    const stop = new AbortController();
    stop.abort();
    await expect(
      connect({ url: silent.url, applicationName: "test", timeoutMs: 60_000, signal: stop.signal }),
    ).rejects.toBeInstanceOf(DatabaseUnavailableError);
    expect(silent.open()).toBe(0);
  });
});
