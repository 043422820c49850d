import { createConnection } from 'node:net';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../src/webhooks/signature.js';
import { type RelayHarness, startRelay } from './support/harness.js';
import { type HookReceiver, startDnsmasq, startHookReceiver, type TestDns } from './support/peers.js';

let relay: RelayHarness;
let dns: TestDns;
let hooks: HookReceiver;
let owner: Awaited<ReturnType<RelayHarness['payer']>>;

beforeAll(async () => {
  // The sender's domain publishes SPF for loopback and a DMARC policy, so the checks have something to pass.
  dns = await startDnsmasq({
    local: ['sender.test'],
    txt: [
      { name: 'sender.test', value: 'v=spf1 ip4:127.0.0.1 -all' },
      { name: '_dmarc.sender.test', value: 'v=DMARC1; p=reject' },
    ],
  });
  relay = await startRelay({ dns: dns.lookup, env: { RELAY_MAX_MESSAGE_BYTES: '200000' } });
  hooks = await startHookReceiver();
  owner = await relay.payer();
});
afterAll(async () => {
  await relay?.stop();
  await hooks?.close();
  await dns?.stop();
});

const transport = (pool = false) =>
  nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true, pool });

async function newMailbox() {
  const res = await relay.call(owner.fetch, 'POST', '/v1/mailboxes');
  expect(res.status).toBe(201);
  return res.body as { id: string; address: string };
}

/** Speaks SMTP line by line and returns the server's reply to each command. */
async function smtpDialogue(commands: string[]): Promise<string[]> {
  const socket = createConnection({ host: '127.0.0.1', port: relay.smtpPort });
  const replies: string[] = [];
  let buffer = '';
  let wake: (() => void) | undefined;
  socket.on('data', (chunk) => {
    buffer += chunk.toString();
    wake?.();
  });
  const nextReply = async () => {
    for (;;) {
      // A complete reply ends with a line whose code is followed by a space.
      const match = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
      if (match) {
        const end = (match.index ?? 0) + match[0].length;
        const reply = buffer.slice(0, end).trim();
        buffer = buffer.slice(end);
        return reply;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  await nextReply(); // greeting
  for (const command of commands) {
    socket.write(`${command}\r\n`);
    replies.push(await nextReply());
  }
  socket.end('QUIT\r\n');
  return replies;
}

describe('the embedded SMTP server, fed by nodemailer', () => {
  it('stores a message with headers, text, html and attachments, shows it through the API and fires a signed webhook', async () => {
    const mailbox = await newMailbox();
    const secret = 'whsec_0123456789abcdef';
    const hook = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${mailbox.id}/webhooks`, {
      url: hooks.url,
      secret,
    });
    expect(hook.status).toBe(201);
    expect(hook.body).not.toHaveProperty('secret');

    const pdf = Buffer.from('%PDF-1.4 fake but binary \x00\x01\x02\xff', 'latin1');
    const info = await transport().sendMail({
      from: 'Alice Sender <alice@sender.test>',
      to: mailbox.address,
      subject: 'Quarterly report ✓',
      text: 'Hello agent,\nthe report is attached.',
      html: '<p>Hello agent, the <b>report</b> is attached.</p>',
      attachments: [{ filename: 'report.pdf', content: pdf, contentType: 'application/pdf' }],
    });
    expect(info.accepted).toEqual([mailbox.address]);
    expect(info.response).toMatch(/^250 /);

    // Acknowledged means stored: the message is there at once.
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages`);
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    const summary = list.body.items[0];
    expect(summary).toMatchObject({
      from: { address: 'alice@sender.test', name: 'Alice Sender' },
      subject: 'Quarterly report ✓',
      unread: true,
      hasAttachments: true,
    });
    expect(summary.preview).toContain('Hello agent');

    const detail = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages/${summary.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.text).toContain('the report is attached.');
    expect(detail.body.html).toContain('<b>report</b>');
    expect(detail.body.messageIdHeader).toBe(info.messageId);
    // Headers as they arrived (encoded words and all); `subject` above is the decoded form.
    expect(detail.body.headers).toContainEqual(['Subject', '=?UTF-8?Q?Quarterly_report_=E2=9C=93?=']);
    expect(detail.body.headers).toContainEqual(['From', 'Alice Sender <alice@sender.test>']);
    expect(detail.body.auth).toMatchObject({ spf: 'pass', dmarc: 'pass' });
    expect(detail.body.attachments).toHaveLength(1);
    const attachment = detail.body.attachments[0];
    expect(attachment).toMatchObject({ filename: 'report.pdf', contentType: 'application/pdf', size: pdf.length });

    const download = await owner.fetch(`${relay.url}${attachment.url}`);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await download.arrayBuffer()).equals(pdf)).toBe(true);

    // Reading marked it read.
    const unread = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages?unread=true`);
    expect(unread.body.items).toHaveLength(0);

    const [delivery] = await hooks.waitFor(1);
    const body = (delivery as (typeof hooks.received)[number]).body;
    expect(verifyWebhook(secret, delivery?.headers['x-signature'] as string, body)).toMatchObject({ ok: true });
    expect(verifyWebhook('wrong-secret-0000', delivery?.headers['x-signature'] as string, body)).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    const event = JSON.parse(body);
    expect(delivery?.headers['x-relay-event']).toBe('message.received');
    expect(delivery?.headers['x-relay-delivery']).toBe(event.id);
    expect(event).toMatchObject({
      event: 'message.received',
      data: {
        mailbox: { id: mailbox.id, address: mailbox.address },
        message: {
          id: summary.id,
          subject: 'Quarterly report ✓',
          from: { address: 'alice@sender.test' },
          hasAttachments: true,
        },
      },
    });

    const log = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/deliveries`);
    expect(log.body.items[0]).toMatchObject({ id: event.id, status: 'delivered', attempts: 1, lastStatusCode: 200 });
  });

  it('refuses unknown mailboxes and foreign domains at RCPT TO, and delivers to the valid recipients only', async () => {
    const mailbox = await newMailbox();
    await expect(
      transport().sendMail({ from: 'a@sender.test', to: 'nobody0000000000@relay.test', subject: 'x', text: 'x' }),
    ).rejects.toMatchObject({ code: 'EENVELOPE', rejected: ['nobody0000000000@relay.test'] });
    await expect(
      transport().sendMail({ from: 'a@sender.test', to: 'someone@gmail.com', subject: 'x', text: 'x' }),
    ).rejects.toMatchObject({ code: 'EENVELOPE' });

    const replies = await smtpDialogue([
      'EHLO client.sender.test',
      'MAIL FROM:<a@sender.test>',
      'RCPT TO:<someone@gmail.com>',
      'RCPT TO:<nobody0000000000@relay.test>',
      `RCPT TO:<${mailbox.address}>`,
    ]);
    expect(replies[2]).toMatch(/^550 5\.7\.1 Relaying denied/);
    expect(replies[3]).toMatch(/^550 5\.1\.1/);
    expect(replies[4]).toMatch(/^250/);

    const mixed = await transport().sendMail({
      from: 'a@sender.test',
      to: [mailbox.address, 'nobody0000000000@relay.test'],
      subject: 'partly deliverable',
      text: 'x',
    });
    expect(mixed.accepted).toEqual([mailbox.address]);
    expect(mixed.rejected).toEqual(['nobody0000000000@relay.test']);
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages`);
    expect(list.body.items.map((m: any) => m.subject)).toEqual(['partly deliverable']);
  });

  it('resets the recipients of each transaction on a reused connection (no leak between messages)', async () => {
    const a = await newMailbox();
    const b = await newMailbox();
    const replies = await smtpDialogue([
      'EHLO client.sender.test',
      'MAIL FROM:<a@sender.test>',
      `RCPT TO:<${a.address}>`,
      'RSET',
      'MAIL FROM:<a@sender.test>',
      `RCPT TO:<${b.address}>`,
      'DATA',
      'From: a@sender.test\r\nTo: b\r\nSubject: only for b\r\n\r\nbody\r\n.',
    ]);
    expect(replies[7]).toMatch(/^250 /);
    // And through a pooled nodemailer transport: two messages on one connection.
    const pooled = transport(true);
    await pooled.sendMail({ from: 'a@sender.test', to: a.address, subject: 'pooled to a', text: 'x' });
    await pooled.sendMail({ from: 'a@sender.test', to: b.address, subject: 'pooled to b', text: 'x' });
    pooled.close();
    const inA = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${a.id}/messages`);
    const inB = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${b.id}/messages`);
    expect(inA.body.items.map((m: any) => m.subject)).toEqual(['pooled to a']);
    expect(inB.body.items.map((m: any) => m.subject).sort()).toEqual(['only for b', 'pooled to b']);
  });

  it('refuses a message over the size limit with 552 and stores nothing', async () => {
    const mailbox = await newMailbox();
    await expect(
      transport().sendMail({ from: 'a@sender.test', to: mailbox.address, subject: 'big', text: 'x'.repeat(300_000) }),
    ).rejects.toMatchObject({ responseCode: 552 });
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages`);
    expect(list.body.items).toHaveLength(0);
  });

  it('refuses an expired mailbox at RCPT TO, before the sweeper has run', async () => {
    const mailbox = await newMailbox();
    await relay.database.pool.query(`UPDATE mailboxes SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      mailbox.id,
    ]);
    await expect(
      transport().sendMail({ from: 'a@sender.test', to: mailbox.address, subject: 'late', text: 'x' }),
    ).rejects.toMatchObject({ code: 'EENVELOPE' });
    expect((await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`)).status).toBe(404);
  });

  it('accepts sub-addresses (local+tag) for the mailbox', async () => {
    const mailbox = await newMailbox();
    const [local, domain] = mailbox.address.split('@');
    const info = await transport().sendMail({
      from: 'a@sender.test',
      to: `${local}+orders@${domain}`,
      subject: 'tagged',
      text: 'x',
    });
    expect(info.accepted).toHaveLength(1);
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages`);
    expect(list.body.items.map((m: any) => m.subject)).toEqual(['tagged']);
  });

  it('filters by sender and read state, pages newest first, and deletes one message', async () => {
    const mailbox = await newMailbox();
    const t = transport(true);
    for (const [from, subject] of [
      ['bob@one.test', 'm1'],
      ['carol@two.test', 'm2'],
      ['Bob@One.test', 'm3'],
    ]) {
      await t.sendMail({ from, to: mailbox.address, subject, text: subject });
    }
    t.close();
    const all = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages?limit=2`);
    expect(all.body.items.map((m: any) => m.subject)).toEqual(['m3', 'm2']);
    const rest = await relay.call(
      owner.fetch,
      'GET',
      `/v1/mailboxes/${mailbox.id}/messages?limit=2&cursor=${all.body.nextCursor}`,
    );
    expect(rest.body.items.map((m: any) => m.subject)).toEqual(['m1']);

    const fromBob = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages?from=bob@one.test`);
    expect(fromBob.body.items.map((m: any) => m.subject)).toEqual(['m3', 'm1']);
    const fromDomain = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages?from=@two.test`);
    expect(fromDomain.body.items.map((m: any) => m.subject)).toEqual(['m2']);
    expect((await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages?from=nonsense`)).status).toBe(
      400,
    );

    const m2 = all.body.items[1].id;
    await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages/${m2}`);
    const read = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages?unread=false`);
    expect(read.body.items.map((m: any) => m.id)).toEqual([m2]);

    const details = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}`);
    expect(details.body.messages).toEqual({ total: 3, unread: 2 });

    const deleted = await relay.call(owner.fetch, 'DELETE', `/v1/mailboxes/${mailbox.id}/messages/${m2}`);
    expect(deleted.status).toBe(200);
    expect((await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${mailbox.id}/messages/${m2}`)).status).toBe(404);
    const before = await relay.bed.balance(owner.account.address);
    expect((await relay.call(owner.fetch, 'DELETE', `/v1/mailboxes/${mailbox.id}/messages/${m2}`)).status).toBe(404);
    expect(await relay.bed.balance(owner.account.address)).toBe(before);
  });
});
