import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, waitForHttp } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
let bed: PaymentTestbed;
let database: TestDatabase<unknown>;
let dataDir: string;

beforeAll(async () => {
  bed = await startPaymentTestbed();
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'spawn-main-'));
  await chmod(dataDir, 0o711);
});
afterAll(async () => {
  await database?.drop();
  await bed?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

const baseEnv = () => ({
  ...process.env,
  DATABASE_URL: database.url,
  CHAIN: 'devnet',
  BASE_RPC_URL: bed.devnet.rpcUrl,
  FACILITATOR_URL: bed.facilitatorUrl,
  PAY_TO_ADDRESS: bed.devnet.accounts.payee.address,
  SERVICE_DATA_DIR: dataDir,
  LOG_LEVEL: 'warn',
});

describe('spawn main', () => {
  it('migrates, starts with the local provider and serves its documents', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const proc = startProcess(tsx, [main, 'serve'], { env: { ...baseEnv(), SPAWN_PORT: String(port) } });
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitForHttp(`${url}/v1/health`, 60_000);
      expect(await (await fetch(`${url}/v1/health`)).json()).toEqual({
        status: 'ok',
        provider: 'local',
        provider_available: true,
      });
      expect((await fetch(`${url}/openapi.json`)).status).toBe(200);
      expect((await fetch(`${url}/v1/servers`)).status).toBe(402);
      // The admin route exists only with a token.
      expect((await fetch(`${url}/v1/admin/reconcile`, { method: 'POST' })).status).toBe(404);
    } finally {
      await proc.stop();
    }
  });

  it('refuses to start with a missing or bad setting, naming it', { timeout: 150_000 }, () => {
    const missing = spawnSync(tsx, [main, 'serve'], {
      env: { ...baseEnv(), SPAWN_PROVIDER: 'hetzner', HETZNER_TOKEN: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('HETZNER_TOKEN');
    const bad = spawnSync(tsx, [main, 'serve'], {
      env: { ...baseEnv(), PAY_TO_ADDRESS: '0x123' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('PAY_TO_ADDRESS');
  });
});
