import { decodePaymentRequiredHeader } from '@x402/core/http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayHarness, startRelay } from './support/harness.js';

let relay: RelayHarness;

beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  await relay?.stop();
});

const countRows = async (table: 'mailboxes' | 'webhooks' | 'domains') =>
  Number((await relay.database.pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);

describe('mailboxes, paid with x402 and owned by the paying wallet', () => {
  it('answers 402 with the price, then creates a mailbox for exactly that price', async () => {
    const unpaid = await fetch(`${relay.url}/v1/mailboxes`, { method: 'POST' });
    expect(unpaid.status).toBe(402);
    const required = decodePaymentRequiredHeader(unpaid.headers.get('payment-required') ?? '');
    expect(required.accepts[0]?.amount).toBe('10000');

    const { account, fetch: pay } = await relay.payer();
    const before = await relay.bed.balance(account.address);
    const created = await relay.call(pay, 'POST', '/v1/mailboxes');
    expect(created.status).toBe(201);
    expect(created.body.address).toMatch(/^[a-z][a-z0-9]{15}@relay\.test$/);
    expect(created.body.id).toMatch(/^mbx_/);
    const ttl = Date.parse(created.body.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(23.9 * 3600_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3600_000);
    expect(await relay.bed.balance(account.address)).toBe(before - 10_000n);
  });

  it('prices a longer TTL by the day and puts the mailbox on another service domain', async () => {
    const { account, fetch: pay } = await relay.payer();
    const before = await relay.bed.balance(account.address);
    const created = await relay.call(pay, 'POST', '/v1/mailboxes', { domain: 'relay2.test', ttl: '72h' });
    expect(created.status).toBe(201);
    expect(created.body.domain).toBe('relay2.test');
    // 24 h included, two more days at $0.001.
    expect(await relay.bed.balance(account.address)).toBe(before - 12_000n);
  });

  it('lists only the caller’s mailboxes, newest first, with cursor pagination', async () => {
    const { fetch: pay } = await relay.payer();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await relay.call(pay, 'POST', '/v1/mailboxes', {})).body.id);
    const first = await relay.call(pay, 'GET', '/v1/mailboxes?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items.map((m: any) => m.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.nextCursor).toBeTruthy();
    const second = await relay.call(pay, 'GET', `/v1/mailboxes?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items.map((m: any) => m.id)).toEqual([ids[0]]);
    expect(second.body.nextCursor).toBeNull();
    const bad = await relay.call(pay, 'GET', '/v1/mailboxes?cursor=garbage');
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('query.cursor');
  });

  it('shows details to the owner, 403 to another wallet, 404 for an unknown id — and charges neither', async () => {
    const owner = await relay.payer();
    const stranger = await relay.payer();
    const { body: mailbox } = await relay.call(owner.fetch, 'POST', '/v1/mailboxes');
    const details = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`);
    expect(details.status).toBe(200);
    expect(details.body).toMatchObject({
      id: mailbox.id,
      address: mailbox.address,
      messages: { total: 0, unread: 0 },
      sending: { today: 0, dailyLimit: 10 },
      webhooks: [],
    });

    const strangerBefore = await relay.bed.balance(stranger.account.address);
    const foreign = await relay.call(stranger.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`);
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe('forbidden');
    for (const [method, path, body] of [
      ['DELETE', `/v1/mailboxes/${mailbox.id}`, undefined],
      ['POST', `/v1/mailboxes/${mailbox.id}/renew`, { days: 1 }],
      ['POST', `/v1/mailboxes/${mailbox.id}/send`, { to: 'x@relay.test', subject: 'hi', text: 'x' }],
      ['GET', `/v1/mailboxes/${mailbox.id}/messages`, undefined],
      ['POST', `/v1/mailboxes/${mailbox.id}/webhooks`, { url: 'https://example.com/h', secret: 'a'.repeat(16) }],
    ] as const) {
      const res = await relay.call(stranger.fetch, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    const unknown = await relay.call(stranger.fetch, 'GET', '/v1/mailboxes/mbx_0000000000000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    const malformed = await relay.call(stranger.fetch, 'GET', '/v1/mailboxes/nope');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.field).toBe('path.id');
    expect(await relay.bed.balance(stranger.account.address)).toBe(strangerBefore);
    // The owner's mailbox is untouched.
    expect((await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`)).status).toBe(200);
  });

  it('renews by whole days at $0.001 per day, capped at the maximum lifetime', async () => {
    const { account, fetch: pay } = await relay.payer();
    const { body: mailbox } = await relay.call(pay, 'POST', '/v1/mailboxes');
    const before = await relay.bed.balance(account.address);
    const renewed = await relay.call(pay, 'POST', `/v1/mailboxes/${mailbox.id}/renew`, { days: 3 });
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expiresAt) - Date.parse(mailbox.expiresAt)).toBe(3 * 86_400_000);
    expect(await relay.bed.balance(account.address)).toBe(before - 3_000n);

    const capped = await relay.call(pay, 'POST', `/v1/mailboxes/${mailbox.id}/renew`, { days: 365 });
    expect(capped.status).toBe(200);
    expect(Date.parse(capped.body.expiresAt)).toBeLessThanOrEqual(Date.now() + 365 * 86_400_000 + 1_000);

    for (const days of [0, -1, 1.5, 366, '2']) {
      const bad = await relay.call(pay, 'POST', `/v1/mailboxes/${mailbox.id}/renew`, { days });
      expect(bad.status, `days=${days}`).toBe(400);
      expect(bad.body.error.field).toBe('body.days');
    }
  });

  it('refuses bad creation input with 400 naming the field, storing nothing and charging nothing', async () => {
    const { account, fetch: pay } = await relay.payer();
    const before = await relay.bed.balance(account.address);
    const rows = await countRows('mailboxes');
    for (const [body, field] of [
      [{ ttl: 60 }, 'body.ttl'],
      [{ ttl: '400d' }, 'body.ttl'],
      [{ ttl: 'forever' }, 'body.ttl'],
      [{ domain: 'not a domain' }, 'body.domain'],
      [{ domain: 'elsewhere.example' }, 'body.domain'],
    ] as const) {
      const res = await relay.call(pay, 'POST', '/v1/mailboxes', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field).toBe(field);
    }
    const notJson = await relay.call(pay, 'POST', '/v1/mailboxes', 'ttl=5', { 'content-type': 'text/plain' });
    expect(notJson.status).toBe(400);
    expect(await countRows('mailboxes')).toBe(rows);
    expect(await relay.bed.balance(account.address)).toBe(before);
  });

  it('honours Idempotency-Key: a retry returns the same mailbox and pays once', async () => {
    const { account, fetch: pay } = await relay.payer();
    const before = await relay.bed.balance(account.address);
    const first = await relay.call(pay, 'POST', '/v1/mailboxes', {}, { 'idempotency-key': 'create-1' });
    const again = await relay.call(pay, 'POST', '/v1/mailboxes', {}, { 'idempotency-key': 'create-1' });
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await relay.bed.balance(account.address)).toBe(before - 10_000n);
  });

  it('deletes a mailbox with everything in it; afterwards it is gone (404)', async () => {
    const { fetch: pay } = await relay.payer();
    const { body: mailbox } = await relay.call(pay, 'POST', '/v1/mailboxes');
    await relay.call(pay, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks`, {
      url: 'https://hooks.example.com/x',
      secret: 'a-secret-of-16-chars',
    });
    const deleted = await relay.call(pay, 'DELETE', `/v1/mailboxes/${mailbox.id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ id: mailbox.id, deleted: true });
    expect((await relay.call(pay, 'GET', `/v1/mailboxes/${mailbox.id}`)).status).toBe(404);
    const { rows } = await relay.database.pool.query('SELECT count(*) AS n FROM webhooks WHERE mailbox_id = $1', [
      mailbox.id,
    ]);
    expect(Number(rows[0].n)).toBe(0);
  });

  it('serves /openapi.json and /llms.txt free, listing every route with its price and settlement order', async () => {
    const openapi = (await (await fetch(`${relay.url}/openapi.json`)).json()) as any;
    expect(openapi.openapi).toBe('3.1.0');
    expect(openapi.paths['/v1/mailboxes/{id}/send'].post['x-price']).toBe('$0.005');
    expect(openapi.paths['/v1/mailboxes/{id}/send'].post['x-settlement']).toBe('first');
    expect(openapi.paths['/v1/mailboxes'].post['x-settlement']).toBe('after-success');
    const llms = await (await fetch(`${relay.url}/llms.txt`)).text();
    for (const route of [
      'POST /v1/mailboxes',
      'GET /v1/mailboxes/:id/messages/:msg',
      'POST /v1/mailboxes/:id/send',
      'POST /v1/domains/:id/verify',
      'DELETE /v1/mailboxes/:id/webhooks/:wh',
    ]) {
      expect(llms).toContain(route);
    }
    expect(llms).toContain('settles before the effect');
    expect(llms).toContain('X-Signature');
    const health = (await (await fetch(`${relay.url}/v1/health`)).json()) as any;
    expect(health).toMatchObject({ status: 'ok', backend: 'embedded', domains: ['relay.test', 'relay2.test'] });
    expect(health.smtp.port).toBe(relay.smtpPort);
  });
});
