// vitest globalSetup of the "e2e" project: one real PostgreSQL server for the whole run.
// Tests get it with inject("pgAdminUrl") / inject("pgPassword"), or through ./database.ts.
import type { TestProject } from "vitest/node";
import { startPostgres } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
    pgAdminUrl: string;
    pgPassword: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide("pgAdminUrl", server.adminUrl);
  project.provide("pgPassword", server.password);
  return async () => {
    await server.stop();
  };
}
