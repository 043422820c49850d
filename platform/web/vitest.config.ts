import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  test: {
    // Unit tests are fast; the browser e2e starts the whole stack (a Next build included) on a loaded machine.
    testTimeout: 600_000,
    hookTimeout: 900_000,
  },
});
