import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningServer } from '@agentstack/core';
import { listen, type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import { x402ResourceServer } from '@x402/core/server';
import { ExactEvmScheme } from '@x402/evm/exact/server';
import { paymentMiddleware } from '@x402/hono';
import { Hono } from 'hono';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicyFetch, FileUsageLedger, PolicyDeniedError } from '../src/paying-fetch.js';
import { policyFromJson } from '../src/policy.js';

let bed: PaymentTestbed;
let seller: RunningServer;
let dir: string;
const payTo = privateKeyToAccount(generatePrivateKey()).address;
let served = 0;

beforeAll(async () => {
  bed = await startPaymentTestbed();
  dir = await mkdtemp(join(tmpdir(), 'sdk-ledger-'));
  const { network } = bed.devnet.chain;
  const asset = bed.devnet.chain.usdc;
  const price = (amount: string) => ({
    accepts: {
      scheme: 'exact',
      network,
      payTo,
      price: { asset: asset.address, amount, extra: { name: asset.name, version: asset.version } },
    },
  });
  const app = new Hono();
  app.use(
    paymentMiddleware(
      { 'GET /cheap': price('100000'), 'GET /dear': price('2500000') },
      new x402ResourceServer(bed.facilitator).register(network, new ExactEvmScheme()),
    ),
  );
  app.get('/cheap', (c) => {
    served++;
    return c.text('cheap data');
  });
  app.get('/dear', (c) => {
    served++;
    return c.text('dear data');
  });
  seller = await listen(app);
});

afterAll(async () => {
  await seller?.close();
  await bed?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('createPolicyFetch (official @x402/fetch under the wallet policy)', () => {
  it('pays within the policy and refuses beyond it before signing anything', async () => {
    const account = await bed.fundedAccount(10_000_000n);
    const paying = createPolicyFetch({ account, policy: policyFromJson({ maxPerDay: '0.25' }) });
    for (let i = 0; i < 2; i++) {
      const res = await paying.fetch(`${seller.url}/cheap`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('cheap data');
    }
    const before = served;
    const refused = await paying.fetch(`${seller.url}/cheap`).catch((e) => e);
    expect(refused).toBeInstanceOf(PolicyDeniedError);
    expect(refused.decision).toMatchObject({ rule: 'maxPerDay', remaining: 50_000n });
    expect(served).toBe(before);
    expect(await bed.balance(account.address)).toBe(10_000_000n - 200_000n);
  });

  it('replaces the client’s default $1 cap with the policy: a $2.50 payment goes through when allowed', async () => {
    const account = await bed.fundedAccount(10_000_000n);
    const allowed = createPolicyFetch({ account, policy: policyFromJson({ maxPerTx: '3' }) });
    expect((await allowed.fetch(`${seller.url}/dear`)).status).toBe(200);
    const capped = createPolicyFetch({ account, policy: policyFromJson({ maxPerTx: '2' }) });
    await expect(capped.fetch(`${seller.url}/dear`)).rejects.toMatchObject({ decision: { rule: 'maxPerTx' } });
    expect(await bed.balance(account.address)).toBe(7_500_000n);
  });

  it('applies deny lists by host, and autoPauseBelow pauses it', async () => {
    const account = await bed.fundedAccount(1_000_000n);
    const denied = createPolicyFetch({ account, policy: policyFromJson({ deny: ['127.0.0.1'] }) });
    await expect(denied.fetch(`${seller.url}/cheap`)).rejects.toMatchObject({ decision: { rule: 'deny' } });
    const floor = createPolicyFetch({
      account,
      policy: policyFromJson({ autoPauseBelow: '0.85' }),
      balance: () => bed.balance(account.address),
    });
    expect((await floor.fetch(`${seller.url}/cheap`)).status).toBe(200); // 1.00 → 0.90
    await expect(floor.fetch(`${seller.url}/cheap`)).rejects.toMatchObject({ decision: { rule: 'autoPauseBelow' } });
    // Paused now, even for what would fit.
    await expect(floor.fetch(`${seller.url}/cheap`)).rejects.toMatchObject({ decision: { rule: 'paused' } });
    await floor.ledger.resume();
    expect(await bed.balance(account.address)).toBe(900_000n);
  });

  it('shares a file ledger across processes’ worth of concurrent callers without exceeding the day', async () => {
    const account = await bed.fundedAccount(10_000_000n);
    const path = join(dir, 'ledger.json');
    const policy = policyFromJson({ maxPerDay: '0.5' });
    // Separate fetch instances over one file, as separate CLI invocations would be.
    const fetches = Array.from({ length: 8 }, () =>
      createPolicyFetch({ account, policy, ledger: new FileUsageLedger(path) }),
    );
    const results = await Promise.all(
      fetches.map((f) =>
        f
          .fetch(`${seller.url}/cheap`)
          .then((r) => r.status)
          .catch((e) => (e instanceof PolicyDeniedError ? 'denied' : String(e))),
      ),
    );
    expect(results.filter((r) => r === 200)).toHaveLength(5);
    expect(results.filter((r) => r === 'denied')).toHaveLength(3);
    expect(await bed.balance(account.address)).toBe(10_000_000n - 500_000n);
  });
});
