import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { relayTestDatabase } from './support/harness.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));

const base = {
  CHAIN: 'devnet',
  BASE_RPC_URL: 'http://127.0.0.1:1',
  FACILITATOR_URL: 'http://127.0.0.1:1',
  PAY_TO_ADDRESS: '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65',
  DATABASE_URL: 'postgres://nobody@127.0.0.1:1/relay',
};

const run = (args: string[], env: Record<string, string>) =>
  spawnSync(tsx, [main, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 60_000 });

describe('relay main', () => {
  it('stops at start naming each bad or missing variable', () => {
    const missing = run(['serve'], { ...base, DATABASE_URL: '' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('DATABASE_URL');
    expect(missing.stderr).not.toContain('    at ');

    const stalwart = run(['serve'], { ...base, RELAY_BACKEND: 'stalwart' });
    expect(stalwart.status).toBe(1);
    expect(stalwart.stderr).toContain('STALWART_URL');
    expect(stalwart.stderr).toContain('RELAY_MTA_HOOK_SECRET');

    const badPrice = run(['serve'], { ...base, RELAY_PRICE_SEND: '0.0000001', RELAY_DOMAINS: 'Not A Domain' });
    expect(badPrice.status).toBe(1);
    expect(badPrice.stderr).toContain('RELAY_PRICE_SEND');
    expect(badPrice.stderr).toContain('RELAY_DOMAINS');
  });

  it('applies its migrations with `migrate`, twice without harm', async () => {
    const database = await relayTestDatabase();
    try {
      // relayTestDatabase already migrated; running again is a no-op that must succeed.
      const result = run(['migrate'], { ...base, DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
      expect(result.status, result.stderr).toBe(0);
      const { rows } = await database.pool.query('SELECT count(*)::int AS n FROM schema_migrations');
      expect(rows[0].n).toBeGreaterThanOrEqual(1);
    } finally {
      await database.drop();
    }
  });
});
