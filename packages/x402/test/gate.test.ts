import { signTransferAuthorization } from '@agentstack/chain';
import { type CoreVariables, errorHandler, forbidden, notFoundHandler, parseUsdc, validate } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  decodePaymentSignatureHeader,
  encodePaymentSignatureHeader,
} from '@x402/core/http';
import type { PaymentPayload } from '@x402/core/types';
import { Hono } from 'hono';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type PaidVariables, PaymentGate } from '../src/gate.js';
import { PgX402Store, x402MigrationsDir } from '../src/store.js';
import { listen, type PaymentTestbed, startPaymentTestbed } from '../src/testing.js';

let bed: PaymentTestbed;
let database: TestDatabase<unknown>;
let server: Awaited<ReturnType<typeof listen>>;
let payee: `0x${string}`;
let effects = 0;
let failingEffects = 0;
let prechecks = 0;
let internalPayer: ReturnType<PaymentTestbed['payingFetch']> | undefined;

function buildApp(gate: PaymentGate) {
  const app = new Hono<{ Variables: PaidVariables & CoreVariables }>();
  app.onError(errorHandler());
  app.notFound(notFoundHandler);
  app.get('/v1/read', gate.paid({ price: 1_000n, settle: 'after-success' }), (c) => c.json({ payer: c.get('payer') }));
  app.post('/v1/refuse', gate.paid({ price: 1_000n, settle: 'after-success' }), (c) =>
    c.json({ error: { code: 'invalid_request', message: 'no', status: 422 } }, 422),
  );
  app.post('/v1/throw', gate.paid({ price: 1_000n, settle: 'after-success' }), () => {
    throw new Error('boom');
  });
  app.post('/v1/effect', gate.paid({ price: 5_000n, settle: 'first' }), (c) => {
    effects += 1;
    return c.json({ effect: effects, transaction: c.get('payment').transaction }, 201);
  });
  app.post('/v1/effect-fails', gate.paid({ price: 2_000n, settle: 'first' }), (c) => {
    failingEffects += 1;
    return c.json({ error: { code: 'upstream_unavailable', message: 'provider down', status: 503 } }, 503);
  });
  app.post(
    '/v1/guarded',
    gate.paid({
      price: 3_000n,
      settle: 'first',
      precheck: async (c) => {
        prechecks += 1;
        if (c.req.header('x-deny')) throw forbidden('not yours');
      },
    }),
    (c) => c.json({ ok: true, transaction: c.get('payment').transaction }, 201),
  );
  app.get(
    '/v1/internal',
    gate.paid({
      price: 1_000n,
      settle: 'after-success',
      internalPayment: async (_c, requirements) => {
        if (!internalPayer) return undefined;
        const required = {
          x402Version: 2,
          resource: { url: 'internal', mimeType: 'application/json' },
          accepts: [requirements],
        };
        return internalPayer.client.createPaymentPayload(required as any);
      },
    }),
    (c) => c.json({ payer: c.get('payer') }),
  );
  app.post(
    '/v1/priced',
    validate('json', z.object({ amount: z.string() })),
    gate.paid({
      price: (c) => parseUsdc((c.req.valid as (t: 'json') => { amount: string })('json').amount),
      settle: 'first',
    }),
    (c) => c.json({ paid: c.get('payment').amount.toString() }),
  );
  return app;
}

beforeAll(async () => {
  bed = await startPaymentTestbed();
  database = await createTestDatabase({ migrationsDir: x402MigrationsDir });
  payee = privateKeyToAccount(generatePrivateKey()).address;
  const gate = new PaymentGate({
    facilitator: bed.facilitator,
    network: bed.devnet.chain.network,
    payTo: payee,
    asset: bed.devnet.chain.usdc,
    store: new PgX402Store(database.pool),
    serviceName: 'test',
  });
  server = await listen(buildApp(gate));
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
  await bed?.stop();
});

/** Captures the PAYMENT-SIGNATURE the official client sends, so tests can replay or tamper with it. */
function recordingFetch(): { fetch: typeof fetch; sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    fetch: async (input, init) => {
      const request = new Request(input, init);
      const header = request.headers.get('payment-signature');
      if (header) sent.push(header);
      return fetch(request);
    },
  };
}

describe('x402 through packages/x402 on the devnet, paid by the official @x402/fetch client', () => {
  it('answers an unpaid request with 402 and a valid PAYMENT-REQUIRED', async () => {
    const res = await fetch(`${server.url}/v1/read`);
    expect(res.status).toBe(402);
    const required = decodePaymentRequiredHeader(res.headers.get('payment-required') ?? '');
    expect(required.x402Version).toBe(2);
    expect(required.accepts[0]).toMatchObject({
      scheme: 'exact',
      network: 'eip155:8453',
      amount: '1000',
      payTo: payee,
      asset: bed.devnet.usdc,
      extra: { name: 'USD Coin', version: '2' },
    });
    expect(((await res.json()) as any).error.code).toBe('payment_required');
  });

  it('moves exactly the price from payer to payee on-chain', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const before = { payer: await bed.balance(payer.address), payee: await bed.balance(payee) };
    const res = await bed.payingFetch(payer).fetch(`${server.url}/v1/read`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ payer: payer.address });
    const receipt = decodePaymentResponseHeader(res.headers.get('payment-response') ?? '');
    expect(receipt.success).toBe(true);
    expect(receipt.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await bed.balance(payer.address)).toBe(before.payer - 1_000n);
    expect(await bed.balance(payee)).toBe(before.payee + 1_000n);
  });

  it('computes the price from the validated request', async () => {
    const payer = await bed.fundedAccount(5_000_000n);
    const res = await bed.payingFetch(payer).fetch(`${server.url}/v1/priced`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: '0.25' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ paid: '250000' });
    expect(await bed.balance(payer.address)).toBe(4_750_000n);
    const bad = await fetch(`${server.url}/v1/priced`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 0.25 }),
    });
    expect(bad.status).toBe(400);
  });

  it('leaves balances untouched when a settle-after-success handler fails', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const client = bed.payingFetch(payer);
    for (const path of ['/v1/refuse', '/v1/throw']) {
      const res = await client.fetch(`${server.url}${path}`, { method: 'POST' });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).not.toBe(402);
      expect(res.headers.get('payment-response')).toBeNull();
    }
    expect(await bed.balance(payer.address)).toBe(1_000_000n);
  });

  it('settles first for irreversible routes: the failure is reported and the payment stays taken', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const client = bed.payingFetch(payer);
    const attemptsBefore = failingEffects;
    const res = await client.fetch(`${server.url}/v1/effect-fails`, {
      method: 'POST',
      headers: { 'idempotency-key': 'fails-1' },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('payment-response')).not.toBeNull();
    expect(await bed.balance(payer.address)).toBe(998_000n);
    // The retry gets the recorded answer and pays nothing more.
    const retry = await client.fetch(`${server.url}/v1/effect-fails`, {
      method: 'POST',
      headers: { 'idempotency-key': 'fails-1' },
    });
    expect(retry.status).toBe(503);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await bed.balance(payer.address)).toBe(998_000n);
    expect(failingEffects).toBe(attemptsBefore + 1);
  });

  it('runs precheck before settling a settle-first route: a refusal costs nothing', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const client = bed.payingFetch(payer);
    const before = prechecks;
    const denied = await client.fetch(`${server.url}/v1/guarded`, {
      method: 'POST',
      headers: { 'x-deny': '1', 'idempotency-key': 'guard-1' },
    });
    expect(denied.status).toBe(403);
    expect(denied.headers.get('payment-response')).toBeNull();
    expect(await bed.balance(payer.address)).toBe(1_000_000n);
    // The refused attempt did not burn its Idempotency-Key: the same key now succeeds and pays once.
    const allowed = await client.fetch(`${server.url}/v1/guarded`, {
      method: 'POST',
      headers: { 'idempotency-key': 'guard-1' },
    });
    expect(allowed.status).toBe(201);
    expect(allowed.headers.get('payment-response')).not.toBeNull();
    expect(await bed.balance(payer.address)).toBe(997_000n);
    expect(prechecks).toBe(before + 2);
  });

  it('replays the same Idempotency-Key ten times with fresh payments as one effect and one charge', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const client = bed.payingFetch(payer);
    const before = effects;
    const bodies: unknown[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await client.fetch(`${server.url}/v1/effect`, {
        method: 'POST',
        headers: { 'idempotency-key': 'order-42' },
      });
      expect(res.status).toBe(201);
      bodies.push(await res.json());
    }
    expect(effects).toBe(before + 1);
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(await bed.balance(payer.address)).toBe(1_000_000n - 5_000n);
    // Ten payments were signed, one settled.
    expect(client.spent()).toBe(50_000n);
  });

  it('refuses a key reused with a different request', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const client = bed.payingFetch(payer);
    const first = await client.fetch(`${server.url}/v1/effect`, {
      method: 'POST',
      headers: { 'idempotency-key': 'reuse', 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(first.status).toBe(201);
    const second = await client.fetch(`${server.url}/v1/effect`, {
      method: 'POST',
      headers: { 'idempotency-key': 'reuse', 'content-type': 'application/json' },
      body: '{"a":2}',
    });
    expect(second.status).toBe(409);
    expect(await bed.balance(payer.address)).toBe(995_000n);
  });

  describe('refused payments', () => {
    let payer: PrivateKeyAccount;
    let valid: PaymentPayload;

    beforeAll(async () => {
      payer = await bed.fundedAccount(1_000_000n);
      const recorder = recordingFetch();
      const client = bed.payingFetch(payer);
      const paying = (await import('@x402/fetch')).wrapFetchWithPayment(recorder.fetch, client.client);
      const res = await paying(`${server.url}/v1/read`);
      expect(res.status).toBe(200);
      valid = decodePaymentSignatureHeader(recorder.sent[0] ?? '');
    });

    async function send(payload: PaymentPayload, path = '/v1/read') {
      const res = await fetch(`${server.url}${path}`, {
        headers: { 'payment-signature': encodePaymentSignatureHeader(payload) },
      });
      const body = (await res.json()) as any;
      return { status: res.status, body };
    }

    async function resigned(
      change: Partial<{ to: `0x${string}`; value: bigint; validBefore: bigint }>,
      signer: PrivateKeyAccount = payer,
    ) {
      const auth = valid.payload.authorization as Record<string, string>;
      const message = {
        to: (change.to ?? auth.to) as `0x${string}`,
        value: change.value ?? BigInt(auth.value as string),
        validAfter: BigInt(auth.validAfter as string),
        validBefore: change.validBefore ?? BigInt(auth.validBefore as string),
        nonce:
          `0x${crypto.getRandomValues(new Uint8Array(32)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '')}` as `0x${string}`,
      };
      const signed = await signTransferAuthorization({
        account: signer,
        chain: bed.devnet.chain.viemChain,
        token: bed.devnet.chain.usdc,
        from: payer.address,
        ...message,
      });
      return {
        ...valid,
        payload: {
          signature: signed.signature,
          authorization: {
            from: payer.address,
            to: message.to,
            value: message.value.toString(),
            validAfter: message.validAfter.toString(),
            validBefore: message.validBefore.toString(),
            nonce: message.nonce,
          },
        },
      } as PaymentPayload;
    }

    it('refuses a replayed payment', async () => {
      const replay = await send(valid);
      expect(replay.status).toBe(402);
      expect(replay.body.error.details.reason).toBe('invalid_exact_evm_nonce_already_used');
    });

    it('refuses an underpaying payment', async () => {
      const under = await send(await resigned({ value: 999n }));
      expect(under.status).toBe(402);
      expect(under.body.error.details.reason).toBe('invalid_exact_evm_payload_authorization_value_mismatch');
      const claimsLess = await send({ ...valid, accepted: { ...valid.accepted, amount: '1' } });
      expect(claimsLess.status).toBe(402);
      expect(claimsLess.body.error.details.reason).toBe('no_matching_requirements');
    });

    it('refuses a payment to the wrong recipient', async () => {
      const stranger = privateKeyToAccount(generatePrivateKey()).address;
      const resignedTo = await send(await resigned({ to: stranger }));
      expect(resignedTo.status).toBe(402);
      expect(resignedTo.body.error.details.reason).toBe('invalid_exact_evm_recipient_mismatch');
      expect((await send({ ...valid, accepted: { ...valid.accepted, payTo: stranger } })).status).toBe(402);
    });

    it('refuses an expired payment', async () => {
      const expired = await send(await resigned({ validBefore: BigInt(Math.floor(Date.now() / 1000) - 60) }));
      expect(expired.status).toBe(402);
      expect(expired.body.error.details.reason).toBe('invalid_exact_evm_payload_authorization_valid_before');
    });

    it('refuses a payment signed by someone else', async () => {
      const forger = privateKeyToAccount(generatePrivateKey());
      const forged = await send(await resigned({}, forger));
      expect(forged.status).toBe(402);
      expect(forged.body.error.details.reason).toBe('invalid_exact_evm_signature');
    });

    it('refuses garbage in the payment header', async () => {
      const res = await fetch(`${server.url}/v1/read`, { headers: { 'payment-signature': 'not base64 json' } });
      expect(res.status).toBe(402);
    });

    it('none of the refused payments moved money', async () => {
      expect(await bed.balance(payer.address)).toBe(999_000n);
    });
  });

  it('lets one signed payment pay for only one of two concurrent requests', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const recorder = recordingFetch();
    const client = bed.payingFetch(payer);
    const paying = (await import('@x402/fetch')).wrapFetchWithPayment(recorder.fetch, client.client);
    // Obtain a valid, unused payment for /v1/effect by letting the client sign one against a 402.
    const probe = await fetch(`${server.url}/v1/effect`, { method: 'POST' });
    const required = decodePaymentRequiredHeader(probe.headers.get('payment-required') ?? '');
    const payload = await client.client.createPaymentPayload(required);
    const header = encodePaymentSignatureHeader(payload);
    const before = effects;
    const results = await Promise.all(
      [1, 2].map(() => fetch(`${server.url}/v1/effect`, { method: 'POST', headers: { 'payment-signature': header } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 402]);
    expect(effects).toBe(before + 1);
    expect(await bed.balance(payer.address)).toBe(995_000n);
    void paying;
  });
});

describe('the paying client (createPayingFetch)', () => {
  it('refuses locally to pay more than maxPerPayment or past its budget, signing nothing', async () => {
    const payer = await bed.fundedAccount(1_000_000n);
    const capped = bed.payingFetch(payer, { maxPerPayment: 4_999n });
    await expect(capped.fetch(`${server.url}/v1/effect`, { method: 'POST' })).rejects.toThrow();
    expect(capped.spent()).toBe(0n);

    const budgeted = bed.payingFetch(payer, { budget: 2_500n });
    expect((await budgeted.fetch(`${server.url}/v1/read`)).status).toBe(200);
    expect((await budgeted.fetch(`${server.url}/v1/read`)).status).toBe(200);
    await expect(budgeted.fetch(`${server.url}/v1/read`)).rejects.toThrow();
    expect(budgeted.spent()).toBe(2_000n);

    const wrongRecipient = bed.payingFetch(payer, { allowPayTo: [bed.devnet.accounts.payer.address] });
    await expect(wrongRecipient.fetch(`${server.url}/v1/read`)).rejects.toThrow();
    expect(await bed.balance(payer.address)).toBe(1_000_000n - 2_000n);
  });
});

describe('internal payments', () => {
  it('pays with an internal payment when the request carries none, and answers 402 when there is none', async () => {
    internalPayer = undefined;
    expect((await fetch(`${server.url}/v1/internal`)).status).toBe(402);
    const account = await bed.fundedAccount(1_000_000n);
    internalPayer = bed.payingFetch(account);
    const res = await fetch(`${server.url}/v1/internal`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ payer: account.address });
    expect(res.headers.get('payment-response')).not.toBeNull();
    expect(await bed.balance(account.address)).toBe(999_000n);
  });
});

describe('a misconfigured network', () => {
  it('answers 503 instead of exiting the process', async () => {
    const store = new PgX402Store(database.pool);
    const gate = new PaymentGate({
      facilitator: bed.facilitator,
      network: 'eip155:1',
      payTo: payee,
      asset: bed.devnet.chain.usdc,
      store,
      serviceName: 'test',
    });
    const app = new Hono();
    app.onError(errorHandler());
    app.get('/x', gate.paid({ price: 1n, settle: 'after-success' }), (c) => c.text('unreachable'));
    const res = await app.request('/x');
    expect(res.status).toBe(503);
    expect(((await res.json()) as any).error.code).toBe('upstream_unavailable');
  });
});
