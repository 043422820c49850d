import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Devnet, startDevnet } from '@agentstack/chain';
import { freePort, startProcess, waitForHttp } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
let devnet: Devnet;

beforeAll(async () => {
  devnet = await startDevnet();
});
afterAll(async () => {
  await devnet?.stop();
});

describe('facilitator service', () => {
  it('serves /supported, and answers malformed or unsupported requests with 400', async () => {
    const port = await freePort();
    const proc = startProcess(tsx, [main], {
      env: {
        ...process.env,
        CHAIN: 'devnet',
        BASE_RPC_URL: devnet.rpcUrl,
        FACILITATOR_PORT: String(port),
        LOG_LEVEL: 'warn',
      },
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitForHttp(`${url}/health`);
      const supported = (await (await fetch(`${url}/supported`)).json()) as any;
      expect(supported.kinds).toContainEqual(expect.objectContaining({ scheme: 'exact', network: 'eip155:8453' }));
      expect(supported.signers['eip155:*'] ?? Object.values(supported.signers).flat()).toContain(
        devnet.accounts.gas.address,
      );

      const malformed = await fetch(`${url}/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"x402Version": 2}',
      });
      expect(malformed.status).toBe(400);
      expect(((await malformed.json()) as any).error.field).toBe('body.paymentPayload');

      const requirements = {
        scheme: 'exact',
        network: 'eip155:1',
        asset: devnet.usdc,
        amount: '1000',
        payTo: devnet.accounts.payee.address,
        maxTimeoutSeconds: 60,
        extra: {},
      };
      const unsupported = await fetch(`${url}/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          x402Version: 2,
          paymentPayload: { x402Version: 2, accepted: requirements, payload: {} },
          paymentRequirements: requirements,
        }),
      });
      expect(unsupported.status).toBe(400);
      expect(((await unsupported.json()) as any).isValid).toBe(false);
      // Still alive after both.
      expect((await fetch(`${url}/health`)).status).toBe(200);
    } finally {
      await proc.stop();
    }
  });

  it('refuses to start on Base without a gas key, naming the variable', () => {
    const result = spawnSync(tsx, [main], {
      env: { ...process.env, CHAIN: 'base', BASE_RPC_URL: 'http://127.0.0.1:1', FACILITATOR_PRIVATE_KEY: '' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('FACILITATOR_PRIVATE_KEY');
  });
});
