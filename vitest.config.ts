import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native steps use every core; running files in parallel only adds contention on 2 cores.
    fileParallelism: false,
  },
});
