import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, started first: each runs on one of the two workers while the other
 * works through the short files. vitest orders a fresh clone's files by size (it remembers durations
 * only in node_modules), and started the bench smoke (about 115 s) at 115 s of a 229 s suite, so
 * that it ran on at the end with the other worker idle.
 */
const LONGEST = ['test/e2e/bench-smoke.test.ts', 'test/e2e/dockerfile.test.ts', 'test/e2e/hostile-input.test.ts'];

const rank = (file: TestSpecification) => {
  const index = LONGEST.findIndex((name) => file.moduleId.endsWith(`/${name}`));
  return index === -1 ? LONGEST.length : index;
};

/** vitest's own order (failed first, then by duration or size), with the longest files of LONGEST ahead of it. */
export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
