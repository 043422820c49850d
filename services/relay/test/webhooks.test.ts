import { createLogger, createSecretBox, newId } from '@agentstack/core';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookUrlProblem } from '../src/webhooks/http.js';
import { WebhookStore } from '../src/webhooks/outbox.js';
import { signWebhook, verifyWebhook } from '../src/webhooks/signature.js';
import { WebhookWorker, webhookSecrets } from '../src/webhooks/worker.js';
import { type RelayHarness, relayTestDatabase, startRelay } from './support/harness.js';
import { type HookReceiver, startHookReceiver } from './support/peers.js';

describe('webhook signatures', () => {
  const secret = 'whsec_test_secret_value';
  const body = '{"id":"whd_1","event":"message.received"}';

  it('verifies a fresh signature and rejects replays, tampering and garbage', () => {
    const now = Date.UTC(2026, 0, 1);
    const header = signWebhook(secret, body, now / 1000);
    expect(verifyWebhook(secret, header, body, { now })).toEqual({ ok: true, timestamp: now / 1000 });
    // The same request five minutes and one second later is a replay.
    expect(verifyWebhook(secret, header, body, { now: now + 301_000 })).toEqual({ ok: false, reason: 'expired' });
    expect(verifyWebhook(secret, header, `${body} `, { now })).toEqual({ ok: false, reason: 'mismatch' });
    // Moving the timestamp forward breaks the MAC: the timestamp is signed.
    const forged = header.replace(/t=\d+/, `t=${now / 1000 + 200}`);
    expect(verifyWebhook(secret, forged, body, { now: now + 200_000 })).toEqual({ ok: false, reason: 'mismatch' });
    for (const bad of [undefined, '', 'v1=abc', `t=${now / 1000}`, 't=x,v1=' + 'a'.repeat(64)]) {
      expect(verifyWebhook(secret, bad, body, { now })).toEqual({ ok: false, reason: 'malformed' });
    }
  });
});

describe('webhook targets are public addresses only (unless allowed)', () => {
  it('refuses private, loopback and odd URLs at registration', () => {
    for (const url of [
      'http://127.0.0.1/h',
      'http://10.1.2.3/h',
      'http://[::1]/h',
      'http://169.254.169.254/latest/meta-data',
      'http://localhost:8080/h',
      'http://db.internal/h',
      'ftp://example.com/h',
      'https://user:pass@example.com/h',
      'not a url',
    ]) {
      expect(webhookUrlProblem(url, false), url).toBeDefined();
    }
    expect(webhookUrlProblem('https://hooks.example.com/relay', false)).toBeUndefined();
    expect(webhookUrlProblem('http://127.0.0.1:9/h', true)).toBeUndefined();
    expect(webhookUrlProblem('http://[::ffff:10.0.0.1]/h', false)).toBeDefined();
    expect(webhookUrlProblem('http://93.184.216.34/h', false)).toBeUndefined();
  });
});

describe('webhook delivery', () => {
  let relay: RelayHarness;
  let hooks: HookReceiver;
  let owner: Awaited<ReturnType<RelayHarness['payer']>>;

  beforeAll(async () => {
    relay = await startRelay({
      env: {
        RELAY_WEBHOOK_RETRY_BASE_MS: '200',
        RELAY_WEBHOOK_MAX_ATTEMPTS: '4',
        RELAY_WEBHOOK_DISABLE_AFTER: '6',
      },
    });
    hooks = await startHookReceiver();
    owner = await relay.payer();
  });
  afterAll(async () => {
    await relay?.stop();
    await hooks?.close();
  });

  async function mailboxWithHook(secret = 'whsec_0123456789abcdef') {
    const mailbox = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    const hook = (
      await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks`, { url: hooks.url, secret })
    ).body;
    return { mailbox, hook, secret };
  }
  const mail = (to: string, subject: string) =>
    nodemailer
      .createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true })
      .sendMail({ from: 'sender@example.org', to, subject, text: 'x' });

  it('retries failed deliveries with growing delays, each attempt freshly signed, until one succeeds', async () => {
    const { mailbox, secret } = await mailboxWithHook();
    hooks.received.length = 0;
    hooks.respondWith.push(500, 503);
    await mail(mailbox.address, 'retry me');
    const attempts = await hooks.waitFor(3);
    expect(attempts).toHaveLength(3);
    const ids = new Set(attempts.map((a) => a.headers['x-relay-delivery']));
    expect(ids.size).toBe(1);
    for (const attempt of attempts) {
      expect(verifyWebhook(secret, attempt.headers['x-signature'] as string, attempt.body)).toMatchObject({ ok: true });
    }
    const gap1 = (attempts[1]?.at ?? 0) - (attempts[0]?.at ?? 0);
    const gap2 = (attempts[2]?.at ?? 0) - (attempts[1]?.at ?? 0);
    expect(gap1).toBeGreaterThanOrEqual(150);
    expect(gap2).toBeGreaterThanOrEqual(300);

    const log = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/deliveries`);
    expect(log.body.items).toHaveLength(1);
    expect(log.body.items[0]).toMatchObject({ status: 'delivered', attempts: 3, lastStatusCode: 200, lastError: null });
    const details = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`);
    expect(details.body.webhooks[0]).toMatchObject({ status: 'active', consecutiveFailures: 0 });
  });

  it('gives a delivery up after the maximum attempts, and disables the webhook after a run of failures, with the reason', async () => {
    const { mailbox, hook } = await mailboxWithHook();
    hooks.received.length = 0;
    hooks.respondWith.push(...Array(20).fill(500));
    await mail(mailbox.address, 'first');
    await hooks.waitFor(4);
    const firstLog = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/deliveries`);
    await expect
      .poll(
        async () =>
          (await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/deliveries`)).body.items[0].status,
        {
          timeout: 10_000,
        },
      )
      .toBe('failed');
    expect(firstLog.body.items[0].lastError).toMatch(/HTTP 500/);

    // Two more failures make six in a row: disabled.
    await mail(mailbox.address, 'second');
    await expect
      .poll(async () => (await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`)).body.webhooks[0].status, {
        timeout: 10_000,
      })
      .toBe('disabled');
    const details = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`);
    expect(details.body.webhooks[0].disabledReason).toMatch(
      /^disabled after 6 consecutive failed deliveries; last: HTTP 500/,
    );
    const log = (await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/deliveries`)).body.items;
    expect(log.map((d: any) => d.status)).toEqual(['failed', 'failed']);

    // While disabled, new mail queues nothing for it; re-enabled, it receives again.
    const before = hooks.received.length;
    await mail(mailbox.address, 'while disabled');
    expect((await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/deliveries`)).body.items).toHaveLength(2);
    hooks.respondWith.length = 0;
    const enabled = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks/${hook.id}/enable`);
    expect(enabled.body).toMatchObject({ status: 'active', consecutiveFailures: 0, disabledReason: null });
    await mail(mailbox.address, 'after enabling');
    await hooks.waitFor(before + 1);
    expect(JSON.parse(hooks.received.at(-1)?.body ?? '{}').data.message.subject).toBe('after enabling');
  });

  it('refuses bad webhook input and removes webhooks', async () => {
    const mailbox = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    const short = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks`, {
      url: hooks.url,
      secret: 'short',
    });
    expect(short.status).toBe(400);
    expect(short.body.error.field).toBe('body.secret');
    const ftp = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks`, {
      url: 'ftp://example.com/x',
      secret: 'a'.repeat(20),
    });
    expect(ftp.status).toBe(400);
    expect(ftp.body.error.field).toBe('body.url');
    const hook = (
      await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks`, {
        url: hooks.url,
        secret: 'a'.repeat(20),
      })
    ).body;
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/webhooks`);
    expect(list.body.items.map((h: any) => h.id)).toEqual([hook.id]);
    expect((await relay.call(owner.fetch, 'DELETE', `/v1/mailboxes/${mailbox.id}/webhooks/${hook.id}`)).status).toBe(
      200,
    );
    expect((await relay.call(owner.fetch, 'DELETE', `/v1/mailboxes/${mailbox.id}/webhooks/${hook.id}`)).status).toBe(
      404,
    );
  });
});

describe('the outbox with several workers (replicas)', () => {
  it('delivers every queued event exactly once when two workers drain at the same time', async () => {
    const database = await relayTestDatabase();
    const hooks = await startHookReceiver();
    try {
      const db = database.db;
      const store = new WebhookStore(db);
      const box = createSecretBox(Buffer.alloc(32, 7), 'relay');
      const secrets = webhookSecrets(box);
      const mailboxId = newId('mbx');
      await db
        .insertInto('mailboxes')
        .values({
          id: mailboxId,
          owner: '0x0',
          address: 'x@relay.test',
          local_part: 'x',
          domain: 'relay.test',
          domain_id: null,
          expires_at: new Date(Date.now() + 3_600_000),
        } as never)
        .execute();
      const hookId = newId('wh');
      await store.create({
        id: hookId,
        mailboxId,
        url: hooks.url,
        sealedSecret: secrets.seal(hookId, 'whsec_abcdefghijklmnop'),
      });
      await db.transaction().execute(async (trx) => {
        for (let i = 0; i < 40; i++)
          await store.enqueue(trx, { mailboxId, event: 'message.received', data: { n: i }, createdAt: new Date() });
      });
      const worker = () =>
        new WebhookWorker({
          store,
          openSecret: secrets.open,
          log: createLogger({ name: 'test', level: 'silent' }),
          timeoutMs: 5_000,
          maxAttempts: 3,
          retryBaseMs: 100,
          retryMaxMs: 1_000,
          disableAfter: 10,
          allowPrivate: true,
          batchSize: 5,
        });
      const [a, b] = await Promise.all([worker().drain(), worker().drain()]);
      expect(a + b).toBe(40);
      expect(a).toBeGreaterThan(0);
      expect(b).toBeGreaterThan(0);
      const ids = hooks.received.map((r) => r.headers['x-relay-delivery']);
      expect(ids).toHaveLength(40);
      expect(new Set(ids).size).toBe(40);
      const { rows } = await database.pool.query(
        `SELECT status, count(*)::int AS n FROM webhook_deliveries GROUP BY status`,
      );
      expect(rows).toEqual([{ status: 'delivered', n: 40 }]);
    } finally {
      await hooks.close();
      await database.drop();
    }
  });
});
