// The order e2e files start in: longest first, across the e2e and e2e-binary projects (vitest's own
// order runs one project's files before the next's, and, without a previous run's durations, small
// files first, which left the pooler files for the end of a fresh clone's run). The run's wall time is
// about the longest file's once the long files start early beside the short ones.

import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Seconds each long file took on a 2-core machine: the order for a run without earlier durations. */
const KNOWN_SECONDS: Record<string, number> = {
  "test/e2e/pooler-transaction-4.test.ts": 110,
  "test/e2e/pooler-transaction-1.test.ts": 100,
  "test/e2e/pooler-session.test.ts": 100,
  "test/e2e/pooler-direct.test.ts": 65,
  "test/e2e/run.test.ts": 60,
  "test/e2e/storm.test.ts": 50,
  "test/e2e/faults.test.ts": 45,
  "test/e2e/binary.test.ts": 45,
  "test/e2e/restart.test.ts": 35,
};

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (spec: TestSpecification): number => {
      const file = relative(root, spec.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${file}`);
      return cached !== undefined ? cached.duration / 1000 : (KNOWN_SECONDS[file] ?? 0);
    };
    const rank = new Map(sorted.map((spec, i) => [spec, i]));
    return [...sorted].sort(
      (a, b) =>
        a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder ||
        seconds(b) - seconds(a) ||
        rank.get(a)! - rank.get(b)!,
    );
  }
}
