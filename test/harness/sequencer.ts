// The order e2e files start in: longest first, across the e2e and e2e-binary projects (vitest's own
// order runs one project's files before the next's, and, without a previous run's durations, small
// files first, which left the pooler files for the end of a fresh clone's run). The run's wall time is
// about the longest file's once the long files start early beside the short ones.
// The durations are fixed here, not read from vitest's cache of the last run: a run of one test
// (`-t`) recorded its file as taking a second, and the next full run started that file last.

import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Seconds each long file took in a full run on a 2-core machine (the rest count as 0: they run after). */
const KNOWN_SECONDS: Record<string, number> = {
  "e2e:test/e2e/run.test.ts": 97,
  "e2e:test/e2e/pooler-transaction-4.test.ts": 48,
  "e2e:test/e2e/pooler-direct.test.ts": 44,
  "e2e-binary:test/e2e/restart.test.ts": 59,
  "e2e-binary:test/e2e/faults.test.ts": 45,
  "e2e:test/e2e/faults.test.ts": 45,
  "e2e:test/e2e/pooler-session.test.ts": 30,
  "e2e:test/e2e/platform-django.test.ts": 40,
  "e2e:test/e2e/pooler-transaction-1.test.ts": 28,
  "e2e:test/e2e/restart.test.ts": 36,
  "e2e:test/e2e/serve.test.ts": 34,
  "e2e:test/e2e/notify.test.ts": 30,
  "e2e:test/e2e/storm.test.ts": 30,
  "e2e:test/e2e/operator.test.ts": 24,
  "e2e:test/e2e/waiters.test.ts": 23,
};

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (spec: TestSpecification): number =>
      KNOWN_SECONDS[`${spec.project.name}:${relative(root, spec.moduleId)}`] ?? 0;
    const rank = new Map(sorted.map((spec, i) => [spec, i]));
    return [...sorted].sort(
      (a, b) =>
        a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder ||
        seconds(b) - seconds(a) ||
        rank.get(a)! - rank.get(b)!,
    );
  }
}
