import { defineConfig } from 'vitest/config';

export default defineConfig({
  // These tests start the service as a real process (tsx from source): seconds on a loaded machine.
  test: { testTimeout: 60_000, hookTimeout: 60_000 },
});
