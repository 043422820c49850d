import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Some tests start real processes (anvil, shells); under load that takes seconds, not milliseconds.
  test: { testTimeout: 30_000, hookTimeout: 60_000 },
});
