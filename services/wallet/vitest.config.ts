import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['@agentstack/db/testing/global-setup'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each file starts its own devnet and facilitator; two at a time keeps a 2-core machine responsive.
    maxWorkers: 2,
  },
});
