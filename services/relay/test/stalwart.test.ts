import { readFileSync } from 'node:fs';
import { createLogger, errorHandler, newId } from '@agentstack/core';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDkimKey } from '../src/dkim.js';
import { basicAuthorization } from '../src/jmap/credentials.js';
import { connectStalwart, StalwartError } from '../src/stalwart/management.js';
import { mountMtaHook, mtaHookRequest, mtaHookResponse } from '../src/stalwart/mta-hook.js';
import { RelayStore } from '../src/store.js';
import { outboxDispatcher } from '../src/webhooks/dispatcher.js';
import { WebhookStore } from '../src/webhooks/outbox.js';
import { relayTestDatabase } from './support/harness.js';
import {
  accountCreate,
  type ContractServer,
  dkimCreate,
  domainCreate,
  jmapRequest,
  restPrincipalCreate,
  startStalwartContract,
} from './support/stalwart-contract.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/stalwart/${name}`, import.meta.url), 'utf8'));
const admin = basicAuthorization('admin', 'admin-password');

describe('the contract data itself (documentation examples pass the schemas)', () => {
  it('accepts the documented examples', () => {
    for (const name of ['jmap-account-create.json', 'jmap-domain-create.json', 'jmap-dkim-create.json']) {
      const request = fixture(name);
      expect(jmapRequest.safeParse(request).success, name).toBe(true);
      const [, args] = request.methodCalls[0];
      const object = Object.values(args.create)[0];
      const schema = name.includes('account') ? accountCreate : name.includes('domain') ? domainCreate : dkimCreate;
      expect(schema.safeParse(object).error?.message, name).toBeUndefined();
    }
    expect(restPrincipalCreate.safeParse(fixture('rest-principal-create.json').request).success).toBe(true);
    expect(mtaHookRequest.safeParse(fixture('mta-hook-request.json')).success).toBe(true);
    expect(mtaHookResponse.safeParse(fixture('mta-hook-response.json')).success).toBe(true);
  });
});

for (const flavour of ['jmap', 'rest'] as const) {
  describe(`Stalwart management, ${flavour === 'jmap' ? 'v0.16+ (JMAP x: methods)' : 'before v0.16 (REST /api)'}`, () => {
    let server: ContractServer;
    beforeAll(async () => {
      server = await startStalwartContract({ flavour, adminAuthorization: admin });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('detects the API generation from the JMAP session', async () => {
      const management = await connectStalwart({ url: server.url, authorization: admin });
      expect(management.flavour).toBe(flavour);
    });

    it('creates a domain with our DKIM key once, manages an account, and removes both', async () => {
      const management = await connectStalwart({ url: server.url, authorization: admin });
      const key = await generateDkimKey();
      const dkim = { domain: 'agents.example', selector: key.selector, privateKeyPem: key.privateKeyPem };
      await management.ensureDomain('agents.example', dkim);
      await management.ensureDomain('agents.example', dkim); // a second replica, or a restart
      const ref = await management.createAccount({
        localPart: 'k3j9x2m4q8w1z7p5',
        domain: 'agents.example',
        password: 'first-password',
        description: 'relay.sh mailbox mbx_1',
      });
      await management.setPassword(ref, 'second-password');
      await management.deleteAccount(ref);
      await management.deleteAccount(ref); // already gone is fine
      await management.removeDomain('agents.example');

      const names = server.calls.map((c) => c.call);
      if (flavour === 'jmap') {
        expect(server.state.dkim.size).toBe(1);
        const [created] = [...server.state.dkim.values()] as any[];
        expect(created).toMatchObject({
          '@type': 'Dkim1RsaSha256',
          selector: key.selector,
          privateKey: { '@type': 'Text', secret: key.privateKeyPem },
        });
        expect(names.filter((n) => n === 'x:DkimSignature/set')).toHaveLength(1);
        const account = server.calls.find((c) => c.call === 'x:Account/set' && (c.args as any).create)?.args as any;
        expect(Object.values(account.create)[0]).toMatchObject({
          '@type': 'User',
          name: 'k3j9x2m4q8w1z7p5',
          credentials: [{ '@type': 'Password', secret: 'first-password' }],
        });
        expect(server.state.accounts.size).toBe(0);
        expect(server.state.domains.size).toBe(0);
      } else {
        expect(ref).toBe('k3j9x2m4q8w1z7p5@agents.example');
        expect(names).toContain('PATCH /api/principal/{name}');
        expect(server.state.settings.size).toBe(0);
        const inserted = server.calls.find((c) => c.call === 'POST /api/settings')?.args as any[];
        const values = Object.fromEntries(inserted.find((op) => op.type === 'insert').values);
        expect(values).toMatchObject({
          selector: key.selector,
          domain: 'agents.example',
          'private-key': key.privateKeyPem,
          algorithm: 'rsa-sha256',
        });
        expect(server.state.accounts.size).toBe(0);
      }
    });

    it('(the contract server refuses what the documentation does not allow)', async () => {
      const bad =
        flavour === 'jmap'
          ? {
              using: ['urn:ietf:params:jmap:core', 'urn:stalwart:jmap'],
              methodCalls: [
                [
                  'x:Account/set',
                  { create: { a: { '@type': 'User', name: 'x', domainId: 'd1', secret: 'oops' } } },
                  'c1',
                ],
              ],
            }
          : { type: 'individual', name: 'x', password: 'oops' };
      const res = await fetch(`${server.url}${flavour === 'jmap' ? '/jmap/' : '/api/principal'}`, {
        method: 'POST',
        headers: { authorization: admin, 'content-type': 'application/json' },
        body: JSON.stringify(bad),
      });
      const body = (await res.json()) as any;
      if (flavour === 'jmap') expect(body.methodResponses[0][1].type).toBe('invalidArguments');
      else expect(res.status).toBe(400);
    });

    it('refuses to work with wrong administrator credentials', async () => {
      await expect(
        connectStalwart({ url: server.url, authorization: basicAuthorization('admin', 'wrong') }),
      ).rejects.toBeInstanceOf(StalwartError);
    });
  });
}

describe('the MTA hook endpoint (Stalwart → relay)', () => {
  const secret = 'mta-hook-secret-0123456789';
  let app: Hono;
  let database: Awaited<ReturnType<typeof relayTestDatabase>>;
  let mailbox: { id: string; address: string };
  let notified = 0;

  beforeAll(async () => {
    database = await relayTestDatabase();
    const store = new RelayStore(database.db);
    const webhooks = new WebhookStore(database.db);
    mailbox = { id: newId('mbx'), address: 'bill@relay.test' };
    await store.insertMailbox({
      id: mailbox.id,
      owner: '0x0000000000000000000000000000000000000001',
      address: mailbox.address,
      localPart: 'bill',
      domain: 'relay.test',
      domainId: null,
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    await webhooks.create({
      id: newId('wh'),
      mailboxId: mailbox.id,
      url: 'https://hooks.example.com/x',
      sealedSecret: 'sealed',
    });
    app = new Hono();
    app.onError(errorHandler());
    mountMtaHook(app, {
      secret,
      store,
      db: database.db,
      dispatcher: {
        ...outboxDispatcher(webhooks, { kick: () => {} }),
        notify: () => {
          notified += 1;
        },
      },
      isOwnDomain: async (d) => d === 'relay.test',
      log: createLogger({ name: 'test', level: 'silent' }),
    });
  });
  afterAll(async () => {
    await database?.drop();
  });

  const post = (body: unknown, authorization?: string) =>
    app.request('/v1/hooks/stalwart', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: JSON.stringify(body),
    });

  it('requires the shared secret (Basic or Bearer)', async () => {
    const request = fixture('mta-hook-request.json');
    expect((await post(request)).status).toBe(401);
    expect((await post(request, 'Bearer wrong-secret-wrong-secret')).status).toBe(401);
    expect((await post(request, `Bearer ${secret}`)).status).toBe(200);
    expect((await post(request, basicAuthorization('stalwart', secret))).status).toBe(200);
  });

  it('accepts the documented DATA request and announces it to the mailbox’s webhooks', async () => {
    const request = fixture('mta-hook-request.json');
    request.envelope.to = [
      { address: 'Bill@relay.test', parameters: null },
      { address: 'someone@elsewhere.test', parameters: null },
    ];
    request.message.serverHeaders.push([
      'Authentication-Results',
      'mx.relay.test; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com; dmarc=pass',
    ]);
    const before = notified;
    const res = await post(request, `Bearer ${secret}`);
    expect(res.status).toBe(200);
    const answer = await res.json();
    expect(mtaHookResponse.parse(answer)).toEqual({ action: 'accept' });
    expect(notified).toBe(before + 1);
    const { rows } = await database.pool.query('SELECT payload FROM webhook_deliveries WHERE mailbox_id = $1', [
      mailbox.id,
    ]);
    expect(rows.at(-1).payload).toMatchObject({
      event: 'message.received',
      data: {
        mailbox: { id: mailbox.id, address: 'bill@relay.test' },
        message: {
          id: null,
          from: { address: 'john@example.com', name: 'John Doe' },
          subject: 'Hello, World!',
          size: 12345,
          auth: { spf: 'pass', dkim: 'pass', dmarc: 'pass', dkimDomains: ['example.com'] },
        },
      },
    });
  });

  it('refuses unknown mailboxes on our domains at the RCPT stage, and leaves other domains alone', async () => {
    const rcpt = (address: string) => ({
      context: { stage: 'RCPT' },
      envelope: { from: { address: 'john@example.com' }, to: [{ address }] },
    });
    expect(await (await post(rcpt('bill@relay.test'), `Bearer ${secret}`)).json()).toEqual({ action: 'accept' });
    expect(await (await post(rcpt('bill+tag@relay.test'), `Bearer ${secret}`)).json()).toEqual({ action: 'accept' });
    expect(await (await post(rcpt('someone@elsewhere.test'), `Bearer ${secret}`)).json()).toEqual({ action: 'accept' });
    const refused = (await (await post(rcpt('nobody@relay.test'), `Bearer ${secret}`)).json()) as any;
    expect(mtaHookResponse.parse(refused)).toMatchObject({
      action: 'reject',
      response: { status: 550, enhancedStatus: '5.1.1' },
    });
  });

  it('answers a malformed request with 400 naming the field', async () => {
    const res = await post({ envelope: {} }, `Bearer ${secret}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.field).toBe('body.context');
  });
});
