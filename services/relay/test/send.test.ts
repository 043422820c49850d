import { authenticate } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimRecordValue } from '../src/dkim.js';
import { type DnsLookup, mailauthResolver } from '../src/dns.js';
import { type RelayHarness, startRelay } from './support/harness.js';
import { type SmtpSink, startDnsmasq, startSmtpSink, type TestDns } from './support/peers.js';

let relay: RelayHarness;
let sink: SmtpSink;
let dns: TestDns | undefined;
let owner: Awaited<ReturnType<RelayHarness['payer']>>;
let mailbox: { id: string; address: string };

// relay's own resolver is pointed at the test DNS server once it runs (it needs relay's DKIM key first).
const lateDns: DnsLookup = {
  resolve: (name, type) => {
    if (!dns) throw Object.assign(new Error('no DNS yet'), { code: 'ESERVFAIL' });
    return dns.lookup.resolve(name, type);
  },
};

beforeAll(async () => {
  sink = await startSmtpSink();
  relay = await startRelay({
    dns: lateDns,
    env: {
      RELAY_OUTBOUND_SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
      RELAY_SEND_DAILY_LIMIT: '4',
      RELAY_MAX_RECIPIENTS: '3',
      RELAY_MAX_SEND_BYTES: '60000',
    },
  });
  const { rows } = await relay.database.pool.query(
    `SELECT name, dkim_selector, dkim_public_key FROM domains WHERE owner IS NULL`,
  );
  dns = await startDnsmasq({
    local: ['relay.test', 'relay2.test'],
    txt: rows.map((r) => ({
      name: `${r.dkim_selector}._domainkey.${r.name}`,
      value: dkimRecordValue(r.dkim_public_key),
    })),
  });
  owner = await relay.payer();
  mailbox = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
});
afterAll(async () => {
  await relay?.stop();
  await sink?.close();
  await dns?.stop();
});

const send = (body: unknown, payer = owner, id = mailbox.id) =>
  relay.call(payer.fetch, 'POST', `/v1/mailboxes/${id}/send`, body);

describe('sending', () => {
  it('sends through the outbound relay, DKIM-signed with the domain key that mailauth verifies through DNS', async () => {
    const before = await relay.bed.balance(owner.account.address);
    const res = await send({
      to: 'someone@example.org',
      cc: ['other@example.org'],
      subject: 'Hello from an agent',
      text: 'plain body',
      html: '<p>html body</p>',
      fromName: 'Agent Smith',
      replyTo: 'replies@example.org',
      attachments: [
        { filename: 'notes.txt', contentType: 'text/plain', content: Buffer.from('attached notes').toString('base64') },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      from: mailbox.address,
      accepted: ['someone@example.org', 'other@example.org'],
      rejected: [],
      sentToday: 1,
      dailyLimit: 4,
    });
    expect(res.headers.get('payment-response')).toBeTruthy();
    expect(await relay.bed.balance(owner.account.address)).toBe(before - 5_000n);

    const [message] = await sink.waitFor(1);
    expect(message?.from).toBe(mailbox.address);
    expect(message?.to.sort()).toEqual(['other@example.org', 'someone@example.org']);
    const raw = (message as { raw: Buffer }).raw.toString();
    expect(raw).toContain(`From: Agent Smith <${mailbox.address}>`);
    expect(raw).toContain(`Message-ID: ${res.body.messageId}`);
    expect(raw).toMatch(/DKIM-Signature: .*d=relay\.test/s);

    const auth = await authenticate((message as { raw: Buffer }).raw, {
      ip: '127.0.0.1',
      helo: 'relay.test',
      sender: mailbox.address,
      mta: 'mx.example.org',
      resolver: mailauthResolver((dns as TestDns).lookup),
    });
    expect(auth.dkim.results[0]?.status.result).toBe('pass');
    expect(auth.dkim.results[0]?.signingDomain).toBe('relay.test');
  });

  it('delivers to mailboxes on its own domains internally, where the DKIM signature verifies on arrival', async () => {
    const inbox = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes', { domain: 'relay2.test' })).body;
    const sunk = sink.messages.length;
    const res = await send({ to: inbox.address, subject: 'internal', text: 'to a sibling mailbox' });
    expect(res.status).toBe(200);
    expect(res.body.accepted).toEqual([inbox.address]);
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${inbox.id}/messages`);
    expect(list.body.items.map((m: any) => m.subject)).toEqual(['internal']);
    const detail = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${inbox.id}/messages/${list.body.items[0].id}`);
    expect(detail.body.auth).toMatchObject({ dkim: 'pass', dkimDomains: ['relay.test'] });
    expect(sink.messages.length).toBe(sunk);
  });

  it('refuses header injection, bad addresses and missing bodies with 400, sending nothing and charging nothing', async () => {
    const before = await relay.bed.balance(owner.account.address);
    const sunk = sink.messages.length;
    const base = { to: 'someone@example.org', subject: 'ok', text: 'ok' };
    for (const [body, field] of [
      [{ ...base, subject: 'Hi\r\nBcc: victim@example.org' }, 'body.subject'],
      [{ ...base, subject: 'Hi\nX-Injected: 1' }, 'body.subject'],
      [{ ...base, to: 'someone@example.org\r\nBcc: victim@example.org' }, 'body.to'],
      [{ ...base, to: ['ok@example.org', 'not an address'] }, 'body.to.1'],
      [{ ...base, cc: ['a@example.org\nb@example.org'] }, 'body.cc.0'],
      [{ ...base, fromName: 'Agent\r\nBcc: victim@example.org' }, 'body.fromName'],
      [{ ...base, replyTo: 'x@example.org\r\n' }, 'body.replyTo'],
      [{ ...base, inReplyTo: '<a@b>\r\nBcc: victim@example.org' }, 'body.inReplyTo'],
      [{ ...base, attachments: [{ filename: 'a.txt\r\nX: y', content: 'aGk=' }] }, 'body.attachments.0.filename'],
      [{ ...base, attachments: [{ filename: '../../etc/passwd', content: 'aGk=' }] }, 'body.attachments.0.filename'],
      [{ ...base, attachments: [{ filename: 'a.txt', content: 'not base64!' }] }, 'body.attachments.0.content'],
      [{ to: 'someone@example.org', subject: 'no body' }, 'body.text'],
      [{ subject: 'no recipient', text: 'x' }, 'body.to'],
    ] as const) {
      const res = await send(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field, JSON.stringify(body)).toBe(field);
    }
    expect(sink.messages.length).toBe(sunk);
    expect(await relay.bed.balance(owner.account.address)).toBe(before);
  });

  it('enforces the recipient and size limits before the payment settles', async () => {
    const before = await relay.bed.balance(owner.account.address);
    const tooMany = await send({
      to: ['a@example.org', 'b@example.org'],
      cc: ['c@example.org', 'd@example.org'],
      subject: 'x',
      text: 'x',
    });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.error.code).toBe('policy_violation');
    const big = Buffer.alloc(70_000, 1).toString('base64');
    const tooBig = await send({
      to: 'a@example.org',
      subject: 'x',
      text: 'x',
      attachments: [{ filename: 'big.bin', content: big }],
    });
    expect(tooBig.status).toBe(413);
    const hugeBody = await send({ to: 'a@example.org', subject: 'x', text: 'x'.repeat(200_000) });
    expect(hugeBody.status).toBe(413);
    expect(await relay.bed.balance(owner.account.address)).toBe(before);
  });

  it('sends once for a retried Idempotency-Key, and charges once', async () => {
    const before = await relay.bed.balance(owner.account.address);
    const sunk = sink.messages.length;
    const body = { to: 'idem@example.org', subject: 'exactly once', text: 'x' };
    const headers = { 'idempotency-key': 'send-once-1' };
    const box = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    const afterCreate = await relay.bed.balance(owner.account.address);
    expect(afterCreate).toBe(before - 10_000n);
    const first = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${box.id}/send`, body, headers);
    const again = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${box.id}/send`, body, headers);
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.body.messageId).toBe(first.body.messageId);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    await sink.waitFor(sunk + 1);
    expect(sink.messages.filter((m) => m.to.includes('idem@example.org'))).toHaveLength(1);
    expect(await relay.bed.balance(owner.account.address)).toBe(afterCreate - 5_000n);
  });

  it('reports recipients the relay refused', async () => {
    sink.refuse.add('bounce@example.org');
    const res = await send({ to: ['bounce@example.org', 'fine@example.org'], subject: 'partial', text: 'x' });
    sink.refuse.clear();
    expect(res.status).toBe(200);
    expect(res.body.accepted).toEqual(['fine@example.org']);
    expect(res.body.rejected).toEqual(['bounce@example.org']);
  });

  it('allows the daily limit per mailbox and then answers 429 with Retry-After, uncharged', async () => {
    const details = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`);
    const left = details.body.sending.dailyLimit - details.body.sending.today;
    for (let i = 0; i < left; i++) {
      expect((await send({ to: 'someone@example.org', subject: `n${i}`, text: 'x' })).status).toBe(200);
    }
    const before = await relay.bed.balance(owner.account.address);
    const limited = await send({ to: 'someone@example.org', subject: 'one too many', text: 'x' });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await relay.bed.balance(owner.account.address)).toBe(before);
    // Another mailbox of the same owner has its own allowance.
    const other = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    expect((await send({ to: 'someone@example.org', subject: 'other', text: 'x' }, owner, other.id)).status).toBe(200);
  });

  it('never lets concurrent sends exceed the daily limit', async () => {
    const fresh = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    // Six concurrent sends by the owner, each through its own paying client.
    const clients = await Promise.all(
      [0, 1, 2, 3, 4, 5].map(async () => ({
        ...owner,
        fetch: relay.bed.payingFetch(owner.account).fetch as typeof fetch,
      })),
    );
    const results = await Promise.all(
      clients.map((c, i) => send({ to: 'someone@example.org', subject: `c${i}`, text: 'x' }, c, fresh.id)),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(4);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
  });
});

describe('sending without a working outbound relay', () => {
  let noRelay: RelayHarness;
  let deadRelay: RelayHarness;

  beforeAll(async () => {
    noRelay = await startRelay({ bed: relay.bed });
    deadRelay = await startRelay({ bed: relay.bed, env: { RELAY_OUTBOUND_SMTP_URL: 'smtp://127.0.0.1:1' } });
  });
  afterAll(async () => {
    await noRelay?.stop();
    await deadRelay?.stop();
  });

  it('refuses external recipients before payment when no relay is configured, but still delivers internally', async () => {
    const payer = await noRelay.payer();
    const box = (await noRelay.call(payer.fetch, 'POST', '/v1/mailboxes')).body;
    const before = await noRelay.bed.balance(payer.account.address);
    const res = await noRelay.call(payer.fetch, 'POST', `/v1/mailboxes/${box.id}/send`, {
      to: 'x@example.org',
      subject: 's',
      text: 't',
    });
    expect(res.status).toBe(422);
    expect(res.body.error.details.unroutable).toEqual(['x@example.org']);
    expect(await noRelay.bed.balance(payer.account.address)).toBe(before);
    const internal = await noRelay.call(payer.fetch, 'POST', `/v1/mailboxes/${box.id}/send`, {
      to: box.address,
      subject: 'self',
      text: 't',
    });
    expect(internal.status).toBe(200);
  });

  it('says so when the relay fails after payment, and does not count the send', async () => {
    const payer = await deadRelay.payer();
    const box = (await deadRelay.call(payer.fetch, 'POST', '/v1/mailboxes')).body;
    const res = await deadRelay.call(payer.fetch, 'POST', `/v1/mailboxes/${box.id}/send`, {
      to: 'x@example.org',
      subject: 's',
      text: 't',
    });
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({
      code: 'upstream_unavailable',
      details: { paymentSettled: true, sent: false },
    });
    const details = await deadRelay.call(payer.fetch, 'GET', `/v1/mailboxes/${box.id}`);
    expect(details.body.sending.today).toBe(0);
  });
});
