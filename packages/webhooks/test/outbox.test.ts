import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSafeFetch, createSecretBox, ManualClock, waitFor } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backoffDelay } from '../src/delivery.js';
import { WebhookOutbox, webhooksMigrationsDir } from '../src/outbox.js';
import { SIGNATURE_HEADER, verifySignature, WEBHOOK_EVENT_HEADER, WEBHOOK_ID_HEADER } from '../src/signature.js';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  path: string;
}

let database: TestDatabase<unknown>;
let server: Server;
let baseUrl: string;
const received: Received[] = [];
/** Status the receiver answers per path (default 200). */
const answers = new Map<string, number[]>();
const secret = 'whsec_test_secret_0123456789';
const localFetch = createSafeFetch({ allowHosts: ['127.0.0.1'], maxRedirects: 0 });

beforeAll(async () => {
  database = await createTestDatabase({ migrationsDir: webhooksMigrationsDir });
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push({ headers: req.headers, body, path: req.url ?? '' });
      const queue = answers.get(req.url ?? '') ?? [];
      res.statusCode = queue.length > 1 ? queue.shift()! : (queue[0] ?? 200);
      res.end(res.statusCode >= 400 ? 'receiver says no' : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await database?.drop();
});

beforeEach(() => {
  received.length = 0;
});

function outbox(clock: ManualClock, extra: Partial<ConstructorParameters<typeof WebhookOutbox>[0]> = {}) {
  return new WebhookOutbox({
    db: database.pool,
    clock,
    fetch: localFetch,
    secretBox: createSecretBox(Buffer.alloc(32, 7), 'webhook-secrets'),
    backoff: { baseMs: 2_000, maxMs: 60_000 },
    ...extra,
  });
}

describe('backoffDelay', () => {
  it('doubles per attempt up to the cap, within ±20 % jitter', () => {
    const opts = { baseMs: 1_000, maxMs: 10_000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, opts, () => 0.5))).toEqual([
      1_000, 2_000, 4_000, 8_000, 10_000, 10_000,
    ]);
    expect(backoffDelay(3, opts, () => 0)).toBe(3_200);
    expect(backoffDelay(3, opts, () => 1)).toBe(4_800);
  });
});

describe('WebhookOutbox (PostgreSQL)', () => {
  it('delivers a signed event the receiver can verify, with id and type headers', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock);
    const target = await box.createTarget({ owner: 'owner-a', url: `${baseUrl}/hook`, secret });
    const { event, deliveryIds } = await box.enqueue({
      owner: 'owner-a',
      type: 'fund_request.created',
      data: { n: 1 },
    });
    expect(deliveryIds).toHaveLength(1);
    expect(await box.deliverDue()).toBe(1);
    expect(received).toHaveLength(1);
    const got = received[0]!;
    expect(JSON.parse(got.body)).toEqual({
      id: event.id,
      type: 'fund_request.created',
      createdAt: event.createdAt,
      data: { n: 1 },
    });
    expect(got.headers[WEBHOOK_ID_HEADER]).toBe(deliveryIds[0]);
    expect(got.headers[WEBHOOK_EVENT_HEADER]).toBe('fund_request.created');
    expect(
      verifySignature({ secret, header: got.headers[SIGNATURE_HEADER] as string, body: got.body, now: clock.now() }).ok,
    ).toBe(true);
    const log = await box.deliveries({ targetId: target.id });
    expect(log.items[0]).toMatchObject({ status: 'delivered', attempts: 1, lastStatus: 200 });
    expect(log.items[0]!.log).toEqual([expect.objectContaining({ attempt: 1, statusCode: 200, error: null })]);
    // Nothing is due any more.
    expect(await box.deliverDue()).toBe(0);
  });

  it('keeps the secret sealed at rest', async () => {
    const box = outbox(new ManualClock());
    const target = await box.createTarget({ owner: 'owner-seal', url: `${baseUrl}/hook`, secret });
    const { rows } = await database.pool.query('SELECT secret FROM webhook_targets WHERE id = $1', [target.id]);
    expect(rows[0].secret).not.toContain(secret);
    expect(rows[0].secret).toMatch(/^v1\./);
  });

  it("writes deliveries in the caller's transaction: nothing when it rolls back", async () => {
    const box = outbox(new ManualClock());
    await box.createTarget({ owner: 'owner-tx', url: `${baseUrl}/hook`, secret });
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      const { deliveryIds } = await box.enqueue({ owner: 'owner-tx', type: 'x.happened', data: {} }, client);
      expect(deliveryIds).toHaveLength(1);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect((await box.deliveries({ owner: 'owner-tx' })).items).toEqual([]);
  });

  it('retries failures with exponential backoff and logs every attempt', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock);
    answers.set('/flaky', [500, 503, 200]);
    const target = await box.createTarget({ owner: 'owner-b', url: `${baseUrl}/flaky`, secret });
    await box.enqueue({ owner: 'owner-b', type: 'x.happened', data: {} });
    expect(await box.deliverDue()).toBe(1);
    // Not due again until the backoff has passed (2 s ± 20 %, then 4 s ± 20 %).
    clock.advance(1_500);
    expect(await box.deliverDue()).toBe(0);
    clock.advance(1_000);
    expect(await box.deliverDue()).toBe(1);
    clock.advance(3_000);
    expect(await box.deliverDue()).toBe(0);
    clock.advance(2_000);
    expect(await box.deliverDue()).toBe(1);
    const [delivery] = (await box.deliveries({ targetId: target.id })).items;
    expect(delivery).toMatchObject({ status: 'delivered', attempts: 3, lastStatus: 200, lastError: null });
    expect(delivery!.log.map((a) => [a.attempt, a.statusCode])).toEqual([
      [1, 500],
      [2, 503],
      [3, 200],
    ]);
    expect(delivery!.log[0]!.error).toContain('receiver says no');
    expect((await box.getTarget(target.id))?.consecutiveFailures).toBe(0);
    // The same signed payload every time: receivers dedupe by X-Webhook-Id.
    expect(new Set(received.map((r) => r.body)).size).toBe(1);
    expect(new Set(received.map((r) => r.headers[WEBHOOK_ID_HEADER])).size).toBe(1);
  });

  it('gives up on a delivery after maxAttempts', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock, { maxAttempts: 2, disableAfter: 10 });
    answers.set('/down', [500]);
    const target = await box.createTarget({ owner: 'owner-c', url: `${baseUrl}/down`, secret });
    await box.enqueue({ owner: 'owner-c', type: 'x.one', data: {} });
    expect(await box.deliverDue()).toBe(1);
    clock.advance(60_000);
    expect(await box.deliverDue()).toBe(1);
    clock.advance(60_000);
    expect(await box.deliverDue()).toBe(0);
    const [delivery] = (await box.deliveries({ targetId: target.id })).items;
    expect(delivery).toMatchObject({ status: 'failed', attempts: 2, nextAttemptAt: null, lastStatus: 500 });
    expect(delivery?.finishedAt).not.toBeNull();
  });

  it('disables a target that keeps failing, with the reason recorded; re-enabling sends what is pending', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock, { disableAfter: 3 });
    answers.set('/broken', [500]);
    const target = await box.createTarget({ owner: 'owner-c2', url: `${baseUrl}/broken`, secret });
    for (const type of ['x.one', 'x.two', 'x.three']) await box.enqueue({ owner: 'owner-c2', type, data: {} });
    expect(await box.deliverDue()).toBe(3);
    const disabled = await box.getTarget(target.id);
    expect(disabled).toMatchObject({ status: 'disabled', consecutiveFailures: 3 });
    expect(disabled?.disabledReason).toContain('3 consecutive failed attempts; last: HTTP 500');
    clock.advance(60_000);
    expect(await box.deliverDue()).toBe(0);
    expect((await box.deliveries({ targetId: target.id })).items.map((d) => d.status)).toEqual([
      'pending',
      'pending',
      'pending',
    ]);
    answers.set('/broken', [200]);
    await box.updateTarget(target.id, { enabled: true });
    expect(await box.deliverDue()).toBe(3);
    expect((await box.getTarget(target.id))?.consecutiveFailures).toBe(0);
    expect((await box.deliveries({ targetId: target.id })).items.every((d) => d.status === 'delivered')).toBe(true);
  });

  it('disables a target at once when it answers 410 Gone', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock);
    answers.set('/gone', [410]);
    const target = await box.createTarget({ owner: 'owner-d', url: `${baseUrl}/gone`, secret });
    await box.enqueue({ owner: 'owner-d', type: 'x.happened', data: {} });
    await box.deliverDue();
    expect(await box.getTarget(target.id)).toMatchObject({
      status: 'disabled',
      disabledReason: 'the receiver answered 410 Gone',
    });
  });

  it('only sends to subscribed targets, and deleting a target cancels what is pending', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock);
    const only = await box.createTarget({ owner: 'owner-e', url: `${baseUrl}/only`, secret, events: ['a.one'] });
    const all = await box.createTarget({ owner: 'owner-e', url: `${baseUrl}/all`, secret });
    expect((await box.enqueue({ owner: 'owner-e', type: 'b.two', data: {} })).deliveryIds).toHaveLength(1);
    expect((await box.enqueue({ owner: 'owner-e', type: 'a.one', data: {} })).deliveryIds).toHaveLength(2);
    await box.deleteTarget(all.id);
    expect(await box.deliverDue()).toBe(1);
    expect(received.map((r) => r.path)).toEqual(['/only']);
    expect((await box.deliveries({ targetId: all.id })).items.map((d) => d.status)).toEqual(['cancelled', 'cancelled']);
    expect((await box.listTargets('owner-e')).map((t) => t.id)).toEqual([only.id]);
  });

  it('sends each delivery once when several workers (replicas) run at the same time', async () => {
    const clock = new ManualClock(new Date());
    const workers = [outbox(clock), outbox(clock), outbox(clock)];
    await workers[0]!.createTarget({ owner: 'owner-f', url: `${baseUrl}/many`, secret });
    for (let i = 0; i < 30; i++) await workers[0]!.enqueue({ owner: 'owner-f', type: 'x.many', data: { i } });
    const counts = await Promise.all(workers.map((w) => w.deliverDue(50)));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    expect(received.filter((r) => r.path === '/many')).toHaveLength(30);
    expect(new Set(received.map((r) => r.headers[WEBHOOK_ID_HEADER])).size).toBe(30);
  });

  it('refuses to deliver to private addresses with the default (SSRF-safe) fetch, and says why', async () => {
    const clock = new ManualClock(new Date());
    const box = new WebhookOutbox({ db: database.pool, clock });
    const target = await box.createTarget({ owner: 'owner-g', url: `${baseUrl}/hook`, secret });
    await box.enqueue({ owner: 'owner-g', type: 'x.happened', data: {} });
    await box.deliverDue();
    expect(received).toHaveLength(0);
    const [delivery] = (await box.deliveries({ targetId: target.id })).items;
    expect(delivery?.lastError).toContain('non-public address');
    await expect(box.createTarget({ owner: 'x', url: 'ftp://example.com/', secret })).rejects.toThrow(/http/);
    await expect(box.createTarget({ owner: 'x', url: `${baseUrl}/hook`, secret: 'short' })).rejects.toThrow(/16/);
  });

  it('runs as a worker: an enqueue is delivered without waiting for the next poll', async () => {
    const box = outbox(new ManualClock(new Date()));
    await box.createTarget({ owner: 'owner-h', url: `${baseUrl}/worker`, secret });
    box.start({ intervalMs: 60_000 });
    try {
      await box.enqueue({ owner: 'owner-h', type: 'x.happened', data: {} });
      await waitFor(() => received.some((r) => r.path === '/worker'), { timeoutMs: 5_000, what: 'delivery' });
    } finally {
      await box.stop();
    }
  });

  it('pages the delivery log newest first', async () => {
    const clock = new ManualClock(new Date());
    const box = outbox(clock);
    await box.createTarget({ owner: 'owner-i', url: `${baseUrl}/page`, secret });
    for (let i = 0; i < 5; i++) {
      await box.enqueue({ owner: 'owner-i', type: 'x.page', data: { i } });
      clock.advance(1_000);
    }
    const first = await box.deliveries({ owner: 'owner-i' }, { limit: 2 });
    const second = await box.deliveries({ owner: 'owner-i' }, { limit: 2, cursor: first.nextCursor! });
    const third = await box.deliveries({ owner: 'owner-i' }, { limit: 2, cursor: second.nextCursor! });
    const order = [...first.items, ...second.items, ...third.items].map((d) => d.createdAt.getTime());
    expect(order).toHaveLength(5);
    expect([...order].sort((a, b) => b - a)).toEqual(order);
    expect(third.nextCursor).toBeNull();
  });
});
