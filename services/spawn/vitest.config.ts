import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['@agentstack/db/testing/global-setup'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Sandboxes, a devnet and Prism per file: one file at a time on a 2-core machine.
    fileParallelism: false,
  },
});
