import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Sandboxes take a uid range and cgroups: one file at a time keeps the limits tests honest on 2 cores.
    fileParallelism: false,
  },
});
