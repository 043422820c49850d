import { randomToken } from '@agentstack/core';
import { describe, expect, it } from 'vitest';
import { generateDkimKey } from '../src/dkim.js';
import { JmapClient } from '../src/jmap/client.js';
import { basicAuthorization, CredentialCache } from '../src/jmap/credentials.js';
import { JmapMail } from '../src/jmap/mail.js';
import { connectStalwart } from '../src/stalwart/management.js';
import { bearer, obtainTokens } from '../src/stalwart/oauth.js';

/**
 * Against a real Stalwart server; runs only when STALWART_URL is set (with STALWART_ADMIN_TOKEN, or
 * STALWART_ADMIN_USER and STALWART_ADMIN_PASSWORD). It creates a throwaway domain (STALWART_TEST_DOMAIN,
 * default relay-live-test.invalid) and account, exercises JMAP as that account, and removes both.
 */
const url = process.env.STALWART_URL;
const adminAuthorization = process.env.STALWART_ADMIN_TOKEN
  ? `Bearer ${process.env.STALWART_ADMIN_TOKEN}`
  : basicAuthorization(process.env.STALWART_ADMIN_USER ?? '', process.env.STALWART_ADMIN_PASSWORD ?? '');
const domain = process.env.STALWART_TEST_DOMAIN ?? 'relay-live-test.invalid';

describe.skipIf(!url)('live Stalwart (STALWART_URL)', () => {
  it('manages a domain and an account, and reads and sends mail over JMAP as that account', {
    timeout: 120_000,
  }, async () => {
    const management = await connectStalwart({ url: url as string, authorization: adminAuthorization });
    console.info(`Stalwart management API: ${management.flavour}`);
    const key = await generateDkimKey();
    await management.ensureDomain(domain, { domain, selector: key.selector, privateKeyPem: key.privateKeyPem });
    const localPart = `relaytest${randomToken(8).toLowerCase()}`;
    const address = `${localPart}@${domain}`;
    let password = randomToken(24);
    const ref = await management.createAccount({ localPart, domain, password, description: 'relay.sh live test' });
    try {
      const cache = new CredentialCache(async () => ({ authorization: basicAuthorization(address, password) }));
      const mail = new JmapMail(
        new JmapClient({ sessionUrl: new URL('/.well-known/jmap', url).toString(), auth: cache.provider(address) }),
      );
      expect(await mail.count()).toEqual({ total: 0, unread: 0 });

      const id = await mail.importMessage(
        Buffer.from(
          `From: live@example.org\r\nTo: ${address}\r\nSubject: live import\r\nMessage-ID: <live-${localPart}@example.org>\r\n\r\nhello\r\n`,
        ),
      );
      const list = await mail.list({ limit: 10 });
      expect(list.items.map((m) => m.subject)).toContain('live import');
      expect((await mail.get(id, { markRead: true }))?.text).toContain('hello');

      await mail.send({
        from: { address, name: '' },
        to: [address],
        cc: [],
        subject: 'live self-send',
        text: 'to myself',
        attachments: [],
      });
      await expect
        .poll(async () => (await mail.list({ limit: 10 })).items.some((m) => m.subject === 'live self-send'), {
          timeout: 60_000,
          interval: 1_000,
        })
        .toBe(true);
      expect(await mail.delete(id)).toBe(true);

      // A new password works at once; the cache refreshes once on the 401 of the old one.
      password = randomToken(24);
      await management.setPassword(ref, password);
      await mail.count();
      expect(cache.fetches.get(address)).toBe(2);

      const tokens = await obtainTokens(url as string, basicAuthorization(address, password));
      const viaOAuth = new JmapMail(
        new JmapClient({
          sessionUrl: new URL('/.well-known/jmap', url).toString(),
          auth: { current: async () => bearer(tokens), refresh: async () => bearer(tokens) },
        }),
      );
      expect((await viaOAuth.count()).total).toBeGreaterThan(0);
    } finally {
      await management.deleteAccount(ref);
      await management.removeDomain(domain);
    }
  });
});
