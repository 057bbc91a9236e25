import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'io',
          include: ['test/**/*.test.ts'],
          exclude: ['test/sim/**'],
          // Tests bind real sockets on 127.0.0.x and start knotd; keep files apart to avoid port races on 2 cores.
          fileParallelism: false,
        },
      },
      {
        // The simulator needs no I/O: its files run beside the others, one at a time (the second core).
        extends: true,
        test: { name: 'sim', include: ['test/sim/**/*.test.ts'], fileParallelism: false },
      },
    ],
  },
});
