import { availableParallelism } from "node:os";
import { defineConfig, type TestProjectInlineConfiguration } from "vitest/config";
import LongestFirst from "./test/harness/sequencer.js";

// e2e files spawn real OS processes (CLI runs, PostgreSQL backends) that mostly wait (on commands,
// polls, leases): 3 files at once keep 2 cores busy without starving a race (at most 3 when fewer cores).
const e2eWorkers = Math.max(1, Math.min(3, availableParallelism() + 1));

/** The e2e project's settings; the binary project re-runs some of its files with the standalone binary. */
const e2e: TestProjectInlineConfiguration["test"] = {
  environment: "node",
  pool: "forks",
  // The e2e tests run the built CLI and the binary: each is built first when older than its sources.
  globalSetup: ["test/harness/fresh-build.ts", "test/harness/global-setup.ts"],
  testTimeout: 60_000,
  hookTimeout: 120_000,
  maxWorkers: e2eWorkers,
  // Projects of one group share its workers and must agree on maxWorkers (vitest 4 refuses otherwise):
  // unit, e2e and e2e-binary are one group, so the unit files fill gaps between the long e2e files.
  sequence: { groupOrder: 1 },
};

export default defineConfig({
  test: {
    // Global (not per-project): time for globalSetup teardowns (stopping PostgreSQL).
    teardownTimeout: 30_000,
    // Longest files first, whichever e2e project they belong to (see the sequencer).
    sequence: { sequencer: LongestFirst },
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
          pool: "forks",
          maxWorkers: e2eWorkers,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "e2e",
          // integration: modules driven directly against PostgreSQL; e2e: the built CLI in real processes.
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          ...e2e,
        },
      },
      {
        test: {
          // The fault and restart races again with the standalone binary (no node on PATH): a leader
          // SIGKILLed, its lock session terminated, signals, PostgreSQL restarts. Scheduled with the
          // e2e files instead of after them. (The storm is not repeated: 100 starts of either build
          // prove the same retries; run.test.ts races both builds.)
          name: "e2e-binary",
          include: ["test/e2e/faults.test.ts", "test/e2e/restart.test.ts"],
          env: { RELEASE_TEST_CLI: "binary" },
          ...e2e,
        },
      },
    ],
  },
});
