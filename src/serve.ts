// `serve`: the release status page, its JSON API and a health check, on PORT.

import { createServer } from "node:http";
import type { Config } from "./config.js";
import type { Reporter } from "./reporter.js";

export interface ServeOptions {
  config: Config;
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM: the server closes and the promise resolves. */
  signal: AbortSignal;
}

export async function serveReleases(options: ServeOptions): Promise<void> {
  const server = createServer((_request, response) => {
    response.writeHead(503, { "content-type": "text/plain" });
    response.end("not implemented yet\n");
  });
  await new Promise<void>((resolve) => server.listen(options.config.port, options.config.host, resolve));
  options.reporter.info(`release status page on http://${options.config.host}:${options.config.port}/`);
  await new Promise<void>((resolve) =>
    options.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
