import { errorHandler, ManualClock } from '@agentstack/core';
import { Hono } from 'hono';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { type CallerVariables, signedRequest, signRequest } from '../src/signed-request.js';
import { MemoryX402Store } from '../src/store.js';

const clock = new ManualClock('2026-11-21T12:00:00Z');
function app() {
  const a = new Hono<{ Variables: CallerVariables }>();
  a.onError(errorHandler());
  a.use('/v1/*', signedRequest({ store: new MemoryX402Store(), clock }));
  a.post('/v1/balance', async (c) => c.json({ caller: c.get('caller'), body: await c.req.text() }));
  a.get('/v1/balance', (c) => c.json({ caller: c.get('caller') }));
  return a;
}

const account = privateKeyToAccount(generatePrivateKey());
const url = 'http://svc.test/v1/balance?x=1';

describe('signed requests (identity for free routes)', () => {
  it('identifies the signer, once', async () => {
    const a = app();
    const body = '{"hello":"world"}';
    const headers = await signRequest(account, { method: 'POST', url, body }, clock.now());
    const res = await a.request(url, {
      method: 'POST',
      body,
      headers: { ...headers, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ caller: account.address, body });
    const replay = await a.request(url, {
      method: 'POST',
      body,
      headers: { ...headers, 'content-type': 'application/json' },
    });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as any).error.message).toContain('already used');
  });

  it('accepts two identical requests signed in the same second (the nonce tells them apart)', async () => {
    const a = app();
    const first = await signRequest(account, { method: 'GET', url }, clock.now());
    const second = await signRequest(account, { method: 'GET', url }, clock.now());
    expect(first['x-signature']).not.toBe(second['x-signature']);
    expect((await a.request(url, { headers: first })).status).toBe(200);
    expect((await a.request(url, { headers: second })).status).toBe(200);
    const changedNonce = await a.request(url, { headers: { ...first, 'x-nonce': 'another-nonce-1' } });
    expect(changedNonce.status).toBe(401);
  });

  it('refuses a changed body, path or method', async () => {
    const a = app();
    const headers = await signRequest(account, { method: 'POST', url, body: '{"amount":"1"}' }, clock.now());
    const tampered = await a.request(url, { method: 'POST', body: '{"amount":"9"}', headers });
    expect(tampered.status).toBe(401);
    const otherPath = await a.request('http://svc.test/v1/balance?x=2', {
      method: 'POST',
      body: '{"amount":"1"}',
      headers,
    });
    expect(otherPath.status).toBe(401);
    const getHeaders = await signRequest(account, { method: 'GET', url }, clock.now());
    const asPost = await a.request(url, { method: 'POST', headers: getHeaders });
    expect(asPost.status).toBe(401);
  });

  it('refuses stale and future timestamps, foreign signers and missing headers', async () => {
    const a = app();
    const stale = await signRequest(account, { method: 'GET', url }, new Date(clock.now().getTime() - 301_000));
    expect((await a.request(url, { headers: stale })).status).toBe(401);
    const future = await signRequest(account, { method: 'GET', url }, new Date(clock.now().getTime() + 301_000));
    expect((await a.request(url, { headers: future })).status).toBe(401);
    const headers = await signRequest(account, { method: 'GET', url }, clock.now());
    const other = privateKeyToAccount(generatePrivateKey()).address;
    const forged = await a.request(url, { headers: { ...headers, 'x-signer': other } });
    expect(forged.status).toBe(401);
    const missing = await a.request(url);
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as any).error.field).toBe('header.x-signature');
    const badTimestamp = await a.request(url, { headers: { ...headers, 'x-timestamp': 'yesterday' } });
    expect(((await badTimestamp.json()) as any).error.field).toBe('header.x-timestamp');
  });
});
