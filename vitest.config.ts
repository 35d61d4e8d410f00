import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

// e2e files spawn many real OS processes (CLI runs, PostgreSQL backends): at most 2 files at once.
const e2eWorkers = Math.max(1, Math.min(2, availableParallelism()));

export default defineConfig({
  test: {
    // Global (not per-project): time for globalSetup teardowns (stopping PostgreSQL).
    teardownTimeout: 30_000,
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
          pool: "forks",
        },
      },
      {
        test: {
          name: "e2e",
          // integration: modules driven directly against PostgreSQL; e2e: the built CLI in real processes.
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          environment: "node",
          pool: "forks",
          // The e2e tests run the built CLI: dist/ is built first when older than src/.
          globalSetup: ["test/harness/fresh-build.ts", "test/harness/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          maxWorkers: e2eWorkers,
          // Projects with different maxWorkers must be in different groups (vitest 4 refuses otherwise);
          // the unit group (order 0) runs first, then e2e.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
