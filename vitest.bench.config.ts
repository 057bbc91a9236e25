import { defineConfig } from 'vitest/config';

// `npm run bench`: the side-by-side benchmark (needs root, knotd, ping); not part of `npm test`.
export default defineConfig({
  test: {
    include: ['test/bench/*.run.ts'],
    testTimeout: 24 * 3600_000,
    fileParallelism: false,
  },
});
