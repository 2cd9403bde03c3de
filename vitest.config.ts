import { configDefaults, defineConfig } from 'vitest/config';
import { filesMissingPrograms, isCi } from './test/support/client-programs.js';

// Without PostgreSQL's client programs (a machine with only Node) the files that need them are
// left out and named at the end; under CI they stay in and global setup fails the run.
const leftOut = isCi() ? [] : [...filesMissingPrograms().keys()];

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
  },
});
