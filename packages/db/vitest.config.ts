import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['./src/global-setup.ts'],
    // Process start/stop under a loaded 2-core machine can take seconds; conditions are awaited, not slept.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
