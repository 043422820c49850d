import { createLogger, parseUsdc } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Catalog, DEFAULT_CATALOG, type ServerType } from '../src/catalog.js';
import { Sweeper } from '../src/sweeper.js';
import { HttpWebhookSender, verifyWebhookSignature } from '../src/webhooks.js';
import { type Payer, type SpawnTestbed, sshKeyPair, startSpawnTestbed, webhookReceiver } from './helpers.js';

// A small type that runs out in four days, so the whole life of a deposit fits in one test.
const catalog: Catalog = {
  ...DEFAULT_CATALOG,
  types: {
    ...DEFAULT_CATALOG.types,
    small: {
      ...(DEFAULT_CATALOG.types.small as ServerType),
      deposit: parseUsdc('1.00'),
      burnPerDay: parseUsdc('0.25'),
    },
  },
};
const SECRET = 'whsec-0123456789abcdef';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let t: SpawnTestbed;
let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
let keys: Awaited<ReturnType<typeof sshKeyPair>>;

beforeAll(async () => {
  t = await startSpawnTestbed({ catalog });
  receiver = await webhookReceiver();
  keys = await sshKeyPair();
  // Start just after midnight UTC, so a day's advance is exactly the next day.
  const now = t.clock.now();
  t.clock.set(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 0, 5)));
});
afterAll(async () => {
  await t?.stop();
  await receiver?.close();
  await keys?.cleanup();
});

const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

async function serverFor(payer: Payer, name: string, deposit = '1.00') {
  expect((await payer.fetch('/v1/balance/deposit', { method: 'POST', json: { amount: deposit } })).status).toBe(200);
  const key = await json(
    await payer.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'k', public_key: keys.publicKey } }),
  );
  const created = await json(
    await payer.fetch('/v1/servers', {
      method: 'POST',
      json: {
        name,
        type: 'small',
        image: 'debian-12',
        ssh_keys: [key.body.ssh_key.id],
        webhook: { url: receiver.url, secret: SECRET },
      },
    }),
  );
  expect(created.status).toBe(201);
  expect((await t.waitForAction(payer, created.body.action.id)).status).toBe('success');
  return created.body.server.id as string;
}

const burns = (serverId: string) =>
  t.database.db.selectFrom('ledger').selectAll().where('server_id', '=', serverId).where('kind', '=', 'burn').execute();

const events = (serverId: string) =>
  receiver.received
    .map((r) => ({ ...r, event: JSON.parse(r.body) }))
    .filter((r) => r.event.data.server_id === serverId);

describe('the daily burn', () => {
  let bob: Payer;
  let serverId: string;

  beforeAll(async () => {
    bob = await t.payer();
    serverId = await serverFor(bob, 'tiny');
  });

  it('charges each server once per UTC day, however often it runs', async () => {
    await t.service.sweeper.sweep();
    await t.service.sweeper.sweep();
    expect((await burns(serverId)).map((b) => b.amount)).toEqual([250_000n]);
    const server = (await json(await bob.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.deposit.remaining).toBe('0.75');
    // Paid through the end of the day plus three more days.
    expect(Date.parse(server.deposit.expires_at) - Date.parse(t.clock.now().toISOString().slice(0, 10))).toBe(4 * DAY);
    expect((await json(await bob.signed('/v1/balance'))).body).toMatchObject({ reserved: '0.75', available: '0.00' });
  });

  it('is replica-safe: concurrent sweepers charge a day once', async () => {
    t.clock.advance(DAY);
    const other = new Sweeper({
      db: t.database.db,
      catalog,
      clock: t.clock,
      servers: t.service.servers,
      webhookBox: (t.service.sweeper as any).deps.webhookBox,
      sender: new HttpWebhookSender({ allowPrivate: true }),
      log: createLogger({ name: 'replica', level: 'silent' }),
    });
    const reports = await Promise.all([
      t.service.sweeper.sweep(),
      other.sweep(),
      t.service.sweeper.sweep(),
      other.sweep(),
    ]);
    // Calls on one sweeper join its running pass: count each pass once.
    expect([...new Set(reports)].reduce((sum, r) => sum + r.charged, 0)).toBe(1);
    expect((await burns(serverId)).length).toBe(2);
  });

  it('warns below three days of burn with a signed webhook, once a day', async () => {
    // Day 2 left 0.50 (< 0.75): one low_balance warning.
    await t.service.sweeper.sweep();
    const warnings = events(serverId).filter((e) => e.event.type === 'server.low_balance');
    expect(warnings.length).toBe(1);
    const [warning] = warnings;
    expect(
      verifyWebhookSignature(SECRET, warning?.headers['x-spawn-signature'] as string, warning?.body ?? '', {
        now: Date.now(),
      }),
    ).toBe(true);
    expect(
      verifyWebhookSignature('wrong-secret-0000', warning?.headers['x-spawn-signature'] as string, warning?.body ?? ''),
    ).toBe(false);
    expect(warning?.event.data).toMatchObject({
      server_name: 'tiny',
      wallet: bob.account.address,
      deposit_remaining: '0.50',
      days_left: 2,
    });
    t.clock.advance(DAY);
    await t.service.sweeper.sweep();
    expect(events(serverId).filter((e) => e.event.type === 'server.low_balance').length).toBe(2);
  });

  it('schedules destruction 24 h after the deposit runs out, with a final warning, and then destroys', async () => {
    t.clock.advance(DAY);
    await t.service.sweeper.sweep();
    const server = (await json(await bob.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.deposit.remaining).toBe('0.00');
    expect(Date.parse(server.deposit.auto_destroy_at)).toBe(t.clock.now().getTime() + DAY);
    const final = events(serverId).filter((e) => e.event.type === 'server.auto_destroy_scheduled');
    expect(final.length).toBe(1);
    expect((await burns(serverId)).reduce((s, b) => s + b.amount, 0n)).toBe(1_000_000n);

    t.clock.advance(23 * HOUR);
    await t.service.sweeper.sweep();
    expect((await json(await bob.fetch(`/v1/servers/${serverId}`))).body.server.status).toBe('running');

    t.clock.advance(2 * HOUR);
    const report = await t.service.sweeper.sweep();
    expect(report.destroyed).toBe(1);
    await t.service.servers.idle();
    const gone = (await json(await bob.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(gone.status).toBe('destroyed');
    expect((await t.sandboxes.manager.list()).map((s) => s.id)).not.toContain(serverId);
    await t.service.sweeper.deliver();
    expect(events(serverId).map((e) => e.event.type)).toContain('server.auto_destroyed');
    // Never below zero, and every movement is in the ledger.
    expect((await json(await bob.signed('/v1/balance'))).body).toMatchObject({
      balance: '0.00',
      reserved: '0.00',
      available: '0.00',
    });
    const kinds = (await t.service.ledger.entries(bob.account.address)).map((e) => e.kind).reverse();
    expect(kinds).toEqual(['deposit', 'reserve', 'burn', 'burn', 'burn', 'burn']);
  });
});

describe('funds arriving in time', () => {
  it('cancel a scheduled destruction and refill the deposit', async () => {
    const carol = await t.payer();
    const serverId = await serverFor(carol, 'saved');
    await t.service.sweeper.sweep();
    for (let day = 1; day < 4; day++) {
      t.clock.advance(DAY);
      await t.service.sweeper.sweep();
    }
    let server = (await json(await carol.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.deposit.remaining).toBe('0.00');
    expect(server.deposit.auto_destroy_at).not.toBeNull();

    expect((await carol.fetch('/v1/balance/deposit', { method: 'POST', json: { amount: '2.00' } })).status).toBe(200);
    server = (await json(await carol.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.deposit.auto_destroy_at).toBeNull();
    expect(server.deposit.remaining).toBe('1.00');
    expect((await json(await carol.signed('/v1/balance'))).body).toMatchObject({ available: '1.00', reserved: '1.00' });

    t.clock.advance(2 * DAY);
    await t.service.sweeper.sweep();
    expect((await json(await carol.fetch(`/v1/servers/${serverId}`))).body.server.status).toBe('running');
  });

  it('top a low deposit up from the available balance before charging', async () => {
    const dave = await t.payer();
    const serverId = await serverFor(dave, 'topped', '3.00');
    await t.service.sweeper.sweep();
    for (let day = 1; day < 3; day++) {
      t.clock.advance(DAY);
      await t.service.sweeper.sweep();
    }
    // Day 1 leaves 0.75; day 2 would leave 0.50 (< 3 days): refilled first, 1.00 after charging; day 3: 0.75.
    const server = (await json(await dave.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.deposit.remaining).toBe('0.75');
    const kinds = (await t.service.ledger.entries(dave.account.address)).map((e) => e.kind).reverse();
    expect(kinds).toEqual(['deposit', 'reserve', 'burn', 'topup', 'burn', 'burn']);
    expect((await json(await dave.signed('/v1/balance'))).body).toMatchObject({ available: '1.50', reserved: '0.75' });
    expect(events(serverId).filter((e) => e.event.type === 'server.low_balance')).toEqual([]);
  });
});

describe('webhook delivery', () => {
  it('retries a failed delivery with backoff until the receiver accepts it', async () => {
    const { createServer } = await import('node:http');
    let attempts = 0;
    const flaky = createServer((req, res) => {
      attempts += 1;
      req.resume();
      res.writeHead(attempts < 3 ? 500 : 200).end();
    });
    await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(flaky.address() as { port: number }).port}/`;
    const erin = await t.payer();
    const serverId = await serverFor(erin, 'flaky');
    await t.database.db
      .updateTable('servers')
      .set({ webhook_url: url, deposit_remaining: 250_000n })
      .where('id', '=', serverId)
      .execute();
    await t.service.sweeper.sweep(); // charges 0.25: deposit empty, final warning queued
    const delivery = () =>
      t.database.db
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('server_id', '=', serverId)
        .executeTakeFirstOrThrow();
    expect(await delivery()).toMatchObject({ status: 'pending', attempts: 1, last_error: 'HTTP 500' });
    await t.service.sweeper.deliver(); // not due yet: nothing sent
    expect(attempts).toBe(1);
    t.clock.advance(30_000);
    await t.service.sweeper.deliver();
    expect(await delivery()).toMatchObject({ status: 'pending', attempts: 2 });
    t.clock.advance(60_000);
    await t.service.sweeper.deliver();
    expect(await delivery()).toMatchObject({ status: 'delivered', attempts: 3, last_error: null });
    await new Promise<void>((resolve) => flaky.close(() => resolve()));
  });
});
