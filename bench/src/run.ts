import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `pnpm bench` runs every benchmark in bench/src/*.bench.ts one after another (they load the machine, so never
 * in parallel); `pnpm bench x402 wallet` runs the named ones.
 */
const dir = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort();
const chosen = wanted.length ? all.filter((name) => wanted.includes(name)) : all;
if (wanted.length && chosen.length !== wanted.length) {
  console.error(`unknown benchmark; available: ${all.join(', ')}`);
  process.exit(2);
}
let failed = false;
for (const name of chosen) {
  try {
    const mod = (await import(join(dir, `${name}.bench.ts`))) as { main: () => Promise<void> };
    await mod.main();
  } catch (err) {
    failed = true;
    console.error(`benchmark ${name} failed:`, err);
  }
}
process.exit(failed ? 1 : 0);
