import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  test: {
    // Unit tests are fast; the browser e2e starts the whole stack (a Next build included) on a loaded machine.
    testTimeout: 600_000,
    hookTimeout: 900_000,
    // The browser waits on a real stack: a tenant runtime may be starting, the machine may be loaded.
    expect: { poll: { timeout: 60_000, interval: 100 } },
  },
});
