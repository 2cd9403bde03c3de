import { configDefaults, defineConfig } from 'vitest/config';
import { filesMissingPrograms, isCi } from './test/support/client-programs.js';

// Without PostgreSQL's client programs (a machine with only Node) the files that need them are
// left out and named at the end; under CI they stay in and global setup fails the run.
const leftOut = isCi() ? [] : [...filesMissingPrograms().keys()];

// Set by scripts/coverage.mjs: the built CLI that integration tests spawn writes raw V8 coverage
// here, which the script maps back to src/ and merges with the in-process report.
const childCoverageDir = process.env.PITR_CHILD_COVERAGE;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...leftOut],
    globalSetup: ['test/support/global-setup.ts'],
    // Integration files each start their own throw-away cluster; two at a time fit these 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Set inside the test workers only, so the CLI processes they spawn inherit it (Node passes
    // NODE_V8_COVERAGE on to children) while the workers themselves keep vitest's own collector.
    env: childCoverageDir ? { NODE_V8_COVERAGE: childCoverageDir } : {},
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['json'],
      reportsDirectory: 'coverage',
      // One failing test should not throw away the numbers of the other few hundred.
      reportOnFailure: true,
    },
  },
});
