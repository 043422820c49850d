import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Every service starts from source under tsx (and the web app may build first); on a loaded 2-core machine that is
  // slow. Speed is measured, not asserted.
  test: { testTimeout: 600_000, hookTimeout: 120_000 },
});
