import { createLogger } from '@agentstack/core';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JmapClient } from '../src/jmap/client.js';
import { basicAuthorization, type Credential, CredentialCache } from '../src/jmap/credentials.js';
import { JmapMail } from '../src/jmap/mail.js';
import { JmapBackend } from '../src/stalwart/backend.js';
import type { StalwartManagement } from '../src/stalwart/management.js';
import { type CyrusServer, cyrusAvailable, startCyrus } from './support/cyrus.js';
import { type RelayHarness, startRelay } from './support/harness.js';
import { type SmtpSink, startSmtpSink } from './support/peers.js';

const available = await cyrusAvailable();
if (!available) {
  console.warn('Cyrus IMAP is not installed: apt-get install -y cyrus-imapd cyrus-caldav cyrus-admin sasl2-bin');
}

let cyrus: CyrusServer;
let sink: SmtpSink;

beforeAll(async () => {
  if (!available) return;
  sink = await startSmtpSink();
  cyrus = await startCyrus({ smtpPort: sink.port, jwtMaxAge: 2 });
});
afterAll(async () => {
  await cyrus?.stop();
  await sink?.close();
});

const lmtp = () => nodemailer.createTransport({ host: '127.0.0.1', port: cyrus.lmtpPort, lmtp: true, ignoreTLS: true });

function basicClient(address: string, password: () => string) {
  const cache = new CredentialCache(async () => ({ authorization: basicAuthorization(address, password()) }));
  const client = new JmapClient({ sessionUrl: `${cyrus.httpUrl}/.well-known/jmap`, auth: cache.provider(address) });
  return { cache, client, mail: new JmapMail(client) };
}

describe.skipIf(!available)('JMAP mail operations against Cyrus IMAP 3.6', () => {
  const address = 'alice@mail.test';
  let mail: JmapMail;

  beforeAll(async () => {
    await cyrus.addUser(address, 'alice-password-1');
    mail = basicClient(address, () => 'alice-password-1').mail;
  });

  it('follows the session redirect and resolves its relative apiUrl', async () => {
    const { client } = basicClient(address, () => 'alice-password-1');
    const session = await client.getSession();
    expect(session.apiUrl).toBe('/jmap/');
    expect(await client.accountId()).toBe(address);
  });

  it('creates, lists (newest first, paged), filters, reads, downloads and deletes messages', async () => {
    const imported = await mail.importMessage(
      Buffer.from(
        'From: Importer <imp@example.org>\r\nTo: alice@mail.test\r\nSubject: imported\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <imported@example.org>\r\n\r\nimported body\r\n',
      ),
    );
    expect(imported).toBeTruthy();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const pdf = Buffer.from([0x25, 0x50, 0x44, 0x46, 0, 1, 2, 255]);
    await lmtp().sendMail({
      from: 'Bob <bob@example.org>',
      to: address,
      subject: 'with attachment',
      text: 'see attached',
      html: '<p>see <i>attached</i></p>',
      attachments: [{ filename: 'a.pdf', content: pdf, contentType: 'application/pdf' }],
    });
    // JMAP receivedAt has one-second precision: keep the deliveries apart so "newest first" is well defined.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await lmtp().sendMail({ from: 'carol@example.org', to: address, subject: 'latest', text: 'newest one' });
    cyrus.index();

    const first = await mail.list({ limit: 2 });
    expect(first.items.map((m) => m.subject)).toEqual(['latest', 'with attachment']);
    expect(first.nextCursor).toBeTruthy();
    const second = await mail.list({ limit: 2, cursor: first.nextCursor ?? undefined });
    expect(second.items.map((m) => m.subject)).toEqual(['imported']);
    expect(second.nextCursor).toBeNull();

    expect((await mail.list({ limit: 10, from: 'bob@example.org' })).items.map((m) => m.subject)).toEqual([
      'with attachment',
    ]);
    expect(await mail.count()).toEqual({ total: 3, unread: 3 });

    const withAttachment = first.items[1] as (typeof first.items)[number];
    expect(withAttachment).toMatchObject({
      from: { address: 'bob@example.org', name: 'Bob' },
      hasAttachments: true,
      unread: true,
    });
    const detail = await mail.get(withAttachment.id, { markRead: true });
    expect(detail?.text).toContain('see attached');
    expect(detail?.html).toContain('<i>attached</i>');
    expect(detail?.attachments).toHaveLength(1);
    const attachment = detail?.attachments[0];
    expect(attachment).toMatchObject({ filename: 'a.pdf', contentType: 'application/pdf', size: pdf.length });
    const downloaded = await mail.attachment(withAttachment.id, attachment?.id as string);
    expect(downloaded?.content.equals(pdf)).toBe(true);
    // A blob of another message is not reachable through this one.
    expect(await mail.attachment(first.items[0]?.id as string, attachment?.id as string)).toBeUndefined();

    expect((await mail.list({ limit: 10, unread: true })).items.map((m) => m.subject)).toEqual(['latest', 'imported']);
    expect((await mail.list({ limit: 10, unread: false })).items.map((m) => m.subject)).toEqual(['with attachment']);

    expect(await mail.delete(imported)).toBe(true);
    expect(await mail.delete(imported)).toBe(false);
    expect(await mail.get(imported, { markRead: false })).toBeUndefined();
    expect(await mail.count()).toEqual({ total: 2, unread: 1 });
  });

  it('sends through EmailSubmission/set to the SMTP server, keeping a copy in Sent', async () => {
    const before = sink.messages.length;
    const result = await mail.send({
      from: { address, name: 'Alice' },
      to: ['dest@example.org'],
      cc: ['copy@example.org'],
      subject: 'sent over JMAP',
      text: 'hello over jmap',
      html: '<p>hello over <b>jmap</b></p>',
      inReplyTo: '<imported@example.org>',
      attachments: [{ filename: 'n.txt', contentType: 'text/plain', content: Buffer.from('note') }],
    });
    expect(result.accepted).toEqual(['dest@example.org', 'copy@example.org']);
    const [message] = (await sink.waitFor(before + 1)).slice(before);
    expect(message?.from).toBe(address);
    expect(message?.to.sort()).toEqual(['copy@example.org', 'dest@example.org']);
    const parsed = await simpleParser(message?.raw as Buffer);
    expect(parsed.subject).toBe('sent over JMAP');
    expect(parsed.messageId).toBe(result.messageId);
    expect(parsed.inReplyTo).toBe('<imported@example.org>');
    expect(parsed.attachments.map((a) => a.filename)).toEqual(['n.txt']);
  });
});

describe.skipIf(!available)('credentials: one shared refresh on 401, concurrent callers wait for it', () => {
  it('re-reads a rotated password once for ten concurrent calls (Basic)', async () => {
    const address = 'rotate@mail.test';
    let stored = 'first-password-123';
    await cyrus.addUser(address, stored);
    const { cache, mail } = basicClient(address, () => stored);
    await mail.count();
    expect(cache.fetches.get(address)).toBe(1);

    stored = 'second-password-456';
    await cyrus.setPassword(address, stored);
    const results = await Promise.all(Array.from({ length: 10 }, () => mail.count()));
    expect(results.every((r) => typeof r.total === 'number')).toBe(true);
    expect(cache.fetches.get(address)).toBe(2);
  });

  it('refreshes an expired Bearer token (JWT) once for ten concurrent calls', async () => {
    const address = 'token@mail.test';
    await cyrus.addUser(address, 'token-user-password');
    let minted = 0;
    const cache = new CredentialCache(async (): Promise<Credential> => {
      minted += 1;
      return { authorization: `Bearer ${cyrus.jwt(address)}` };
    });
    const mail = new JmapMail(
      new JmapClient({ sessionUrl: `${cyrus.httpUrl}/.well-known/jmap`, auth: cache.provider(address) }),
    );
    await mail.count();
    expect(minted).toBe(1);
    // Cyrus accepts a token for 2 s after its iat; then it answers 401.
    await new Promise((resolve) => setTimeout(resolve, 3_100));
    const results = await Promise.all(Array.from({ length: 10 }, () => mail.count()));
    expect(results).toHaveLength(10);
    expect(minted).toBe(2);
  });

  it('fails cleanly when the fresh credential is refused too, without looping', async () => {
    const address = 'wrong@mail.test';
    await cyrus.addUser(address, 'the-real-password');
    let asked = 0;
    const cache = new CredentialCache(async () => {
      asked += 1;
      return { authorization: basicAuthorization(address, 'not-the-password') };
    });
    const mail = new JmapMail(
      new JmapClient({ sessionUrl: `${cyrus.httpUrl}/.well-known/jmap`, auth: cache.provider(address) }),
    );
    await expect(mail.count()).rejects.toMatchObject({ type: 'unauthorized', status: 401 });
    expect(asked).toBe(2);
  });

  it('lets a refresh that failed be retried by the next caller', async () => {
    let calls = 0;
    const cache = new CredentialCache(async () => {
      calls += 1;
      if (calls === 1) throw new Error('token endpoint down');
      return { authorization: 'Bearer ok' };
    });
    await expect(cache.current('k')).rejects.toThrow('token endpoint down');
    expect((await cache.current('k')).authorization).toBe('Bearer ok');
  });
});

/** Account management for the JMAP backend, done the way a Cyrus operator would (sasldb + autocreate). */
function cyrusManagement(
  server: () => CyrusServer,
  domain: string,
): StalwartManagement & { passwords: Map<string, string> } {
  const passwords = new Map<string, string>();
  return {
    flavour: 'rest',
    passwords,
    async createAccount({ localPart, password }) {
      const address = `${localPart}@${domain}`;
      await server().addUser(address, password);
      passwords.set(address, password);
      return address;
    },
    async setPassword(ref, password) {
      await server().setPassword(ref, password);
      passwords.set(ref, password);
    },
    async deleteAccount(ref) {
      // Revoke access: the account can no longer authenticate.
      await server().setPassword(ref, `deleted-${Math.random()}`);
      passwords.delete(ref);
    },
    async ensureDomain() {},
    async removeDomain() {},
  };
}

describe.skipIf(!available)('relay.sh on the JMAP backend (Cyrus as the mail server)', () => {
  let relay: RelayHarness;
  const management = cyrusManagement(() => cyrus, 'relay.test');

  beforeAll(async () => {
    relay = await startRelay({
      env: { RELAY_DOMAINS: 'relay.test' },
      backend: ({ store, box, log }) =>
        new JmapBackend({
          url: cyrus.httpUrl,
          management: async () => management,
          store,
          box,
          log: log ?? createLogger({ name: 'test', level: 'silent' }),
          auth: 'basic',
        }),
    });
  });
  afterAll(async () => {
    await relay?.stop();
  });

  it('creates the account, reads delivered mail and sends through the paid API', async () => {
    const owner = await relay.payer();
    const box = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    expect(management.passwords.has(box.address)).toBe(true);
    // relay keeps the account password sealed, never in clear.
    const { rows } = await relay.database.pool.query(
      'SELECT backend_login, backend_secret FROM mailboxes WHERE id = $1',
      [box.id],
    );
    expect(rows[0].backend_login).toBe(box.address);
    expect(rows[0].backend_secret).not.toContain(management.passwords.get(box.address));

    await lmtp().sendMail({ from: 'dora@example.org', to: box.address, subject: 'over jmap', text: 'jmap body' });
    const list = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${box.id}/messages`);
    expect(list.status).toBe(200);
    expect(list.body.items.map((m: any) => m.subject)).toEqual(['over jmap']);
    const detail = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${box.id}/messages/${list.body.items[0].id}`);
    expect(detail.body).toMatchObject({ text: expect.stringContaining('jmap body'), unread: true });
    const after = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${box.id}`);
    expect(after.body.messages).toEqual({ total: 1, unread: 0 });

    const before = sink.messages.length;
    const sent = await relay.call(owner.fetch, 'POST', `/v1/mailboxes/${box.id}/send`, {
      to: 'outside@example.org',
      subject: 'reply via jmap',
      text: 'sent by relay over JMAP',
    });
    expect(sent.status).toBe(200);
    const [message] = (await sink.waitFor(before + 1)).slice(before);
    expect(message?.from).toBe(box.address);
    expect(message?.to).toEqual(['outside@example.org']);
  });

  it('resets a password changed behind its back after one 401, and carries on', async () => {
    const owner = await relay.payer();
    const box = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    expect((await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${box.id}/messages`)).status).toBe(200);
    await cyrus.setPassword(box.address, 'changed-by-someone-else');
    const res = await relay.call(owner.fetch, 'GET', `/v1/mailboxes/${box.id}/messages`);
    expect(res.status).toBe(200);
    expect(management.passwords.get(box.address)).not.toBe('changed-by-someone-else');
  });

  it('deletes the account with the mailbox', async () => {
    const owner = await relay.payer();
    const box = (await relay.call(owner.fetch, 'POST', '/v1/mailboxes')).body;
    expect((await relay.call(owner.fetch, 'DELETE', `/v1/mailboxes/${box.id}`)).status).toBe(200);
    expect(management.passwords.has(box.address)).toBe(false);
  });
});
