import { randomBytes } from 'node:crypto';
import { createLogger, newId, waitFor } from '@agentstack/core';
import { createTestDatabase } from '@agentstack/db/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcile } from '../src/reconcile.js';
import { Servers } from '../src/servers.js';
import { type SpawnDB, spawnMigrationsDir } from '../src/store.js';
import { type Payer, type SpawnTestbed, ssh, sshKeyPair, startSpawnTestbed } from './helpers.js';

let t: SpawnTestbed;
let alice: Payer;
let keys: Awaited<ReturnType<typeof sshKeyPair>>;
const ids: Record<string, string> = {};

const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

beforeAll(async () => {
  t = await startSpawnTestbed();
  alice = await t.payer();
  keys = await sshKeyPair();
  await alice.fetch('/v1/balance/deposit', { method: 'POST', json: { amount: '20.00' } });
  const key = await json(
    await alice.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'k', public_key: keys.publicKey } }),
  );
  for (const name of ['one', 'two', 'three']) {
    const created = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name, type: 'small', image: 'debian-12', ssh_keys: [key.body.ssh_key.id] },
      }),
    );
    expect((await t.waitForAction(alice, created.body.action.id)).status).toBe('success');
    ids[name] = created.body.server.id;
  }
});
afterAll(async () => {
  await t?.stop();
  await keys?.cleanup();
});

const status = async (id: string) => (await json(await alice.fetch(`/v1/servers/${id}`))).body.server;

describe('reconciliation with the provider', () => {
  it('sees at once a server whose processes died behind the service’s back', async () => {
    await (await t.sandboxes.manager.open(ids.one as string)).stop();
    await waitFor(async () => (await status(ids.one as string)).status === 'off', { what: 'status off' });
  });

  it('corrects a row that disagrees with the provider', async () => {
    await t.database.db
      .updateTable('servers')
      .set({ status: 'unknown', ssh_port: 1 })
      .where('id', '=', ids.two as string)
      .execute();
    const report = await t.service.reconcile();
    expect(report.updated).toBe(1);
    const server = await status(ids.two as string);
    expect(server.status).toBe('running');
    expect(server.ssh.port).toBeGreaterThan(1);
  });

  it('starts again, at start-up, the servers that were on when the service went down', async () => {
    // Sandboxes die with the service; their labels remember they should be on.
    await t.sandboxes.manager.close();
    await t.provider.init();
    await t.service.reconcile();
    for (const name of ['one', 'two', 'three']) expect((await status(ids[name] as string)).status).toBe('running');
    const server = await status(ids.two as string);
    expect((await ssh(keys.privateKey, server.ssh, 'echo back')).stdout).toBe('back\n');
    // One server cannot reach another's SSH port: each has a network of its own, with nothing on it.
    const other = await status(ids.one as string);
    const probe = await ssh(
      keys.privateKey,
      server.ssh,
      `(echo > /dev/tcp/127.0.0.1/${other.ssh.port}) 2>&1 || echo refused`,
    );
    expect(probe.stdout).toContain('refused');
  });

  it('marks a server the provider lost as destroyed and refunds its deposit', async () => {
    const before = (await json(await alice.signed('/v1/balance'))).body;
    await (await t.sandboxes.manager.open(ids.three as string)).destroy();
    const report = await t.service.reconcile();
    expect(report.lost).toEqual([ids.three]);
    expect((await status(ids.three as string)).status).toBe('destroyed');
    const after = (await json(await alice.signed('/v1/balance'))).body;
    expect(BigInt(after.available_atomic)).toBe(BigInt(before.available_atomic) + 5_000_000n);
    expect(BigInt(after.reserved_atomic)).toBe(BigInt(before.reserved_atomic) - 5_000_000n);
  });

  it('fails actions whose process died, so the server can be acted on again', async () => {
    const id = newId('act');
    await t.database.db
      .insertInto('actions')
      .values({
        id,
        owner: alice.account.address,
        server_id: ids.two as string,
        command: 'reboot_server',
        status: 'running',
        error_code: null,
        error_message: null,
        secret_sealed: null,
        runner: 'run_dead',
        heartbeat_at: new Date(Date.now() - 120_000),
        finished_at: null,
      })
      .execute();
    expect((await alice.fetch(`/v1/servers/${ids.two}/reboot`, { method: 'POST' })).status).toBe(409);
    const report = await t.service.reconcile();
    expect(report.interrupted).toEqual([id]);
    const action = (await json(await alice.signed(`/v1/actions/${id}`))).body.action;
    expect(action).toMatchObject({ status: 'error', error: { code: 'interrupted' } });
    const reboot = await json(await alice.fetch(`/v1/servers/${ids.two}/reboot`, { method: 'POST' }));
    expect(reboot.status).toBe(201);
    expect((await t.waitForAction(alice, reboot.body.action.id)).status).toBe('success');
  });

  it('rebuilds ownership from the provider’s labels when the database is lost', async () => {
    const fresh = await createTestDatabase<SpawnDB>({ migrationsDir: spawnMigrationsDir });
    try {
      const log = createLogger({ name: 'adopt', level: 'silent' });
      const { createSecretBox } = await import('@agentstack/core');
      const box = createSecretBox(randomBytes(32), 'x');
      const servers = new Servers({
        db: fresh.db,
        provider: t.provider,
        catalog: t.catalog,
        clock: t.clock,
        userDataBox: box,
        webhookBox: box,
        log,
      });
      const report = await reconcile({
        db: fresh.db,
        provider: t.provider,
        servers,
        catalog: t.catalog,
        clock: t.clock,
        log,
      });
      expect(report.adopted.sort()).toEqual([ids.one, ids.two].sort());
      const rows = await fresh.db.selectFrom('servers').selectAll().orderBy('name').execute();
      expect(rows.map((r) => [r.id, r.owner, r.name, r.type, r.status])).toEqual([
        [ids.one, alice.account.address, 'one', 'small', 'running'],
        [ids.two, alice.account.address, 'two', 'small', 'running'],
      ]);
      expect(rows[0]?.ssh_port).toBeGreaterThan(0);
      // A second pass changes nothing.
      expect(
        (await reconcile({ db: fresh.db, provider: t.provider, servers, catalog: t.catalog, clock: t.clock })).adopted,
      ).toEqual([]);
    } finally {
      await fresh.drop();
    }
  });

  it('removes from the provider a server whose row says destroyed (nobody pays for it)', async () => {
    // As if a destroy had refunded and recorded, but the provider call never happened.
    await t.database.db
      .updateTable('servers')
      .set({ status: 'destroyed' })
      .where('id', '=', ids.two as string)
      .execute();
    const report = await t.service.reconcile();
    expect(report.removed).toEqual([ids.two]);
    expect((await t.sandboxes.manager.list()).map((s) => s.id)).not.toContain(ids.two);
    await t.database.db
      .updateTable('servers')
      .set({ status: 'running' })
      .where('id', '=', ids.two as string)
      .execute();
    expect((await t.service.reconcile()).lost).toEqual([ids.two]);
  });

  it('can be triggered by an operator, and only with the admin token', async () => {
    expect((await fetch(`${t.url}/v1/admin/reconcile`, { method: 'POST' })).status).toBe(401);
    expect(
      (await fetch(`${t.url}/v1/admin/reconcile`, { method: 'POST', headers: { authorization: 'Bearer wrong' } }))
        .status,
    ).toBe(401);
    const res = await json(
      await fetch(`${t.url}/v1/admin/reconcile`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' },
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ checked: 1, lost: [], adopted: [], removed: [] });
  });
});
