import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsLookup, type DnsLookup } from '../src/dns.js';
import { type RelayHarness, startRelay } from './support/harness.js';
import { startDnsmasq, type TestDns } from './support/peers.js';

let relay: RelayHarness;
let current: DnsLookup | undefined;
const started: TestDns[] = [];

beforeAll(async () => {
  relay = await startRelay({
    dns: { resolve: (name, type) => (current as DnsLookup).resolve(name, type) },
    env: { RELAY_MX_HOST: 'mx.relay.test', RELAY_SPF_INCLUDE: '_spf.relay.test' },
  });
});
afterAll(async () => {
  await relay?.stop();
  for (const dns of started) await dns.stop();
});

/** A DNS server publishing exactly these records (a real dnsmasq on loopback), made relay's resolver. */
async function publish(records: { type: string; name: string; value: string; priority?: number }[], local: string[]) {
  const dns = await startDnsmasq({
    local,
    txt: records.filter((r) => r.type === 'TXT').map((r) => ({ name: r.name, value: r.value })),
    mx: records
      .filter((r) => r.type === 'MX')
      .map((r) => ({ name: r.name, host: r.value, priority: r.priority ?? 10 })),
  });
  started.push(dns);
  current = dns.lookup;
}

const byPurpose = (records: any[]) => Object.fromEntries(records.map((r) => [r.purpose, r]));

describe('custom domains', () => {
  it('registers a domain for $0.10 and returns the MX, SPF, DKIM and DMARC records to publish', async () => {
    const { account, fetch: pay } = await relay.payer();
    const before = await relay.bed.balance(account.address);
    const res = await relay.call(pay, 'POST', '/v1/domains', { domain: 'Agents.Example.' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ domain: 'agents.example', status: 'pending', verifiedAt: null });
    const records = byPurpose(res.body.records);
    expect(records.mx).toMatchObject({
      type: 'MX',
      name: 'agents.example',
      value: 'mx.relay.test',
      priority: 10,
      required: true,
    });
    expect(records.spf).toMatchObject({
      type: 'TXT',
      name: 'agents.example',
      value: 'v=spf1 include:_spf.relay.test ~all',
    });
    expect(records.dkim.name).toMatch(/^relay-[0-9a-f]{10}\._domainkey\.agents\.example$/);
    expect(records.dkim.value).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/);
    expect(records.dmarc).toMatchObject({ name: '_dmarc.agents.example', required: false });
    expect(await relay.bed.balance(account.address)).toBe(before - 100_000n);
    // The private key is sealed at rest.
    const { rows } = await relay.database.pool.query('SELECT dkim_private_key FROM domains WHERE id = $1', [
      res.body.id,
    ]);
    expect(rows[0].dkim_private_key).toMatch(/^v1\./);
    expect(rows[0].dkim_private_key).not.toContain('PRIVATE KEY');
  });

  it('refuses service domains, their subdomains, repeats and malformed names', async () => {
    const { account, fetch: pay } = await relay.payer();
    const before = await relay.bed.balance(account.address);
    expect((await relay.call(pay, 'POST', '/v1/domains', { domain: 'relay.test' })).status).toBe(409);
    expect((await relay.call(pay, 'POST', '/v1/domains', { domain: 'sub.relay2.test' })).status).toBe(409);
    const bad = await relay.call(pay, 'POST', '/v1/domains', { domain: 'under_score..example' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('body.domain');
    expect((await relay.call(pay, 'POST', '/v1/domains', { domain: 'once.example' })).status).toBe(201);
    expect((await relay.call(pay, 'POST', '/v1/domains', { domain: 'once.example' })).status).toBe(409);
    expect(await relay.bed.balance(account.address)).toBe(before - 100_000n);
  });

  it('verifies each record through a real DNS server, and lets the owner (only) use the domain once verified', async () => {
    const owner = await relay.payer();
    const squatter = await relay.payer();
    const mine = (await relay.call(owner.fetch, 'POST', '/v1/domains', { domain: 'verified.example' })).body;
    const theirs = (await relay.call(squatter.fetch, 'POST', '/v1/domains', { domain: 'verified.example' })).body;
    expect(theirs.id).not.toBe(mine.id);

    // Nothing published yet: every record is missing, the domain stays pending.
    await publish([], ['verified.example']);
    const missing = await relay.call(owner.fetch, 'POST', `/v1/domains/${mine.id}/verify`);
    expect(missing.status).toBe(200);
    expect(missing.body.status).toBe('pending');
    expect(missing.body.records.map((r: any) => r.state)).toEqual(['missing', 'missing', 'missing', 'missing']);
    const early = await relay.call(owner.fetch, 'POST', '/v1/mailboxes', { domain: 'verified.example' });
    expect(early.status).toBe(422);
    expect(early.body.error.code).toBe('policy_violation');

    // Wrong SPF, the owner's DKIM key, no DMARC: pending, with each state explained.
    const ownRecords = byPurpose(mine.records);
    await publish(
      [
        ownRecords.mx,
        { type: 'TXT', name: 'verified.example', value: 'v=spf1 include:elsewhere.example -all' },
        ownRecords.dkim,
      ],
      ['verified.example'],
    );
    const partial = await relay.call(owner.fetch, 'POST', `/v1/domains/${mine.id}/verify`);
    expect(byPurpose(partial.body.records)).toMatchObject({
      mx: { state: 'verified', found: ['10 mx.relay.test'] },
      spf: { state: 'mismatch' },
      dkim: { state: 'verified' },
      dmarc: { state: 'missing' },
    });
    expect(partial.body.status).toBe('pending');

    // Everything as asked: verified. The squatter's key is not the published one, so theirs never verifies.
    await publish([ownRecords.mx, ownRecords.spf, ownRecords.dkim, ownRecords.dmarc], ['verified.example']);
    const done = await relay.call(owner.fetch, 'POST', `/v1/domains/${mine.id}/verify`);
    expect(done.body.status).toBe('verified');
    expect(done.body.records.every((r: any) => r.state === 'verified')).toBe(true);
    const stolen = await relay.call(squatter.fetch, 'POST', `/v1/domains/${theirs.id}/verify`);
    expect(stolen.body.status).toBe('pending');
    expect(byPurpose(stolen.body.records).dkim.state).toBe('missing');
    const stored = await relay.call(owner.fetch, 'GET', `/v1/domains/${mine.id}`);
    expect(stored.body).toMatchObject({ status: 'verified', verifiedAt: expect.any(String) });

    // The owner creates a mailbox on it; mail for it is accepted by the SMTP server; others cannot use it.
    const box = await relay.call(owner.fetch, 'POST', '/v1/mailboxes', { domain: 'verified.example' });
    expect(box.status).toBe(201);
    expect(box.body.address).toMatch(/@verified\.example$/);
    expect((await relay.call(squatter.fetch, 'POST', '/v1/mailboxes', { domain: 'verified.example' })).status).toBe(
      403,
    );
    const info = await nodemailer
      .createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true })
      .sendMail({ from: 'a@sender.example', to: box.body.address, subject: 'custom', text: 'x' });
    expect(info.accepted).toEqual([box.body.address]);

    // Ownership of the registration itself.
    expect((await relay.call(squatter.fetch, 'GET', `/v1/domains/${mine.id}`)).status).toBe(403);
    expect((await relay.call(squatter.fetch, 'DELETE', `/v1/domains/${mine.id}`)).status).toBe(403);
    expect((await relay.call(squatter.fetch, 'GET', '/v1/domains/dom_0000000000000000000000')).status).toBe(404);

    // A domain with mailboxes cannot be deleted (and that refusal is free); without them it can.
    const before = await relay.bed.balance(owner.account.address);
    const refused = await relay.call(owner.fetch, 'DELETE', `/v1/domains/${mine.id}`);
    expect(refused.status).toBe(409);
    expect(await relay.bed.balance(owner.account.address)).toBe(before);
    await relay.call(owner.fetch, 'DELETE', `/v1/mailboxes/${box.body.id}`);
    expect((await relay.call(owner.fetch, 'DELETE', `/v1/domains/${mine.id}`)).status).toBe(200);
    expect((await relay.call(owner.fetch, 'GET', `/v1/domains/${mine.id}`)).status).toBe(404);
  });

  it('reports a DNS failure as an error state, not as missing records', async () => {
    const { fetch: pay } = await relay.payer();
    const domain = (await relay.call(pay, 'POST', '/v1/domains', { domain: 'unreachable.example' })).body;
    current = createDnsLookup({ servers: ['127.0.0.1:9'], timeoutMs: 200 });
    const res = await relay.call(pay, 'POST', `/v1/domains/${domain.id}/verify`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('pending');
    expect(res.body.records.every((r: any) => r.state === 'error' && /DNS lookup failed/.test(r.detail))).toBe(true);
  });
});
