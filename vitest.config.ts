import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests bind real sockets on 127.0.0.x and start knotd; keep files apart to avoid port races on 2 cores.
    fileParallelism: false,
  },
});
