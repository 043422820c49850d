import { existsSync } from 'node:fs';
import { decodePaymentRequiredHeader } from '@x402/core/http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Payer, refused, type SpawnTestbed, ssh, sshKeyPair, startSpawnTestbed } from './helpers.js';

let t: SpawnTestbed;
let alice: Payer;
let mallory: Payer;
let keys: Awaited<ReturnType<typeof sshKeyPair>>;
let keyId: string;
let serverId: string;
let endpoint: { host: string; port: number; user: string };

beforeAll(async () => {
  t = await startSpawnTestbed();
  [alice, mallory] = await Promise.all([t.payer(), t.payer()]);
  keys = await sshKeyPair();
});
afterAll(async () => {
  await t?.stop();
  await keys?.cleanup();
});

const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

describe('discovery', () => {
  it('serves health, openapi.json and llms.txt for free', async () => {
    const health = await json(await fetch(`${t.url}/v1/health`));
    expect(health).toMatchObject({ status: 200, body: { status: 'ok', provider: 'local', provider_available: true } });
    const openapi = (await (await fetch(`${t.url}/openapi.json`)).json()) as any;
    for (const path of [
      '/v1/servers',
      '/v1/servers/{id}/resize',
      '/v1/actions/{id}',
      '/v1/ssh-keys/{id}',
      '/v1/balance/deposit',
    ]) {
      expect(openapi.paths[path]).toBeDefined();
    }
    expect(openapi.paths['/v1/servers'].post['x-price']).toBe('$0.01');
    expect(openapi.paths['/v1/servers'].post['x-settlement']).toBe('first');
    const llms = await (await fetch(`${t.url}/llms.txt`)).text();
    expect(llms).toContain('POST /v1/servers — $0.01, settles before the effect');
    expect(llms).toContain('setSpendControls');
    expect(llms).toContain('GET /v1/actions/:id — free');
  });

  it('asks for payment with x402 on paid routes', async () => {
    const res = await fetch(`${t.url}/v1/servers`);
    expect(res.status).toBe(402);
    const required = decodePaymentRequiredHeader(res.headers.get('payment-required') ?? '');
    expect(required.accepts[0]?.amount).toBe('1000');
  });

  it('needs a signed request for the balance', async () => {
    const res = await json(await fetch(`${t.url}/v1/balance`));
    expect(res.status).toBe(401);
    expect(res.body.error.field).toBe('header.x-signature');
  });
});

describe('SSH keys', () => {
  it('registers a valid key and returns its fingerprint', async () => {
    const res = await json(
      await alice.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'laptop', public_key: keys.publicKey } }),
    );
    expect(res.status).toBe(201);
    expect(res.body.ssh_key).toMatchObject({ name: 'laptop', type: 'ssh-ed25519' });
    expect(res.body.ssh_key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    keyId = res.body.ssh_key.id;
  });

  it('refuses invalid keys and names before charging anything', async () => {
    const before = await t.bed.balance(alice.account.address);
    const bad = await json(
      await alice.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'x', public_key: 'ssh-ed25519 AAAA' } }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('body.public_key');
    const badName = await json(
      await alice.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'has space', public_key: keys.publicKey } }),
    );
    expect(badName.status).toBe(400);
    expect(badName.body.error.field).toBe('body.name');
    expect(await t.bed.balance(alice.account.address)).toBe(before);
  });

  it('refuses the same key or name twice (409)', async () => {
    const again = await json(
      await alice.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'other', public_key: keys.publicKey } }),
    );
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('conflict');
  });

  it('lists only the caller’s keys', async () => {
    expect((await json(await alice.fetch('/v1/ssh-keys'))).body.ssh_keys.map((k: any) => k.id)).toEqual([keyId]);
    expect((await json(await mallory.fetch('/v1/ssh-keys'))).body.ssh_keys).toEqual([]);
  });
});

describe('deposits', () => {
  it('refuses a server when the deposit is short (422), crediting the fee', async () => {
    const res = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name: 'web-1', type: 'small', image: 'debian-12', ssh_keys: [keyId] },
      }),
    );
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('insufficient_deposit');
    expect(res.body.error.details).toMatchObject({ required: '5.00', available: '0.00', fee_credited: '0.01' });
    const balance = await json(await alice.signed('/v1/balance'));
    expect(balance.body).toMatchObject({ available: '0.01', reserved: '0.00', balance: '0.01' });
  });

  it('adds up several deposits, each paid with x402 for the amount', async () => {
    const before = await t.bed.balance(alice.account.address);
    for (const amount of ['6.00', '3.99']) {
      const res = await json(await alice.fetch('/v1/balance/deposit', { method: 'POST', json: { amount } }));
      expect(res.status).toBe(200);
      expect(res.body.deposited).toBe(amount);
    }
    expect(await t.bed.balance(alice.account.address)).toBe(before - 9_990_000n);
    const balance = await json(await alice.signed('/v1/balance'));
    expect(balance.body).toMatchObject({ available: '10.00', available_atomic: '10000000', reserved: '0.00' });
  });

  it('refuses malformed amounts (400) without a payment', async () => {
    for (const amount of ['1.0000001', '-1', 'abc']) {
      const res = await json(await alice.fetch('/v1/balance/deposit', { method: 'POST', json: { amount } }));
      expect(res.status).toBe(400);
      expect(res.body.error.field).toBe('body.amount');
    }
  });
});

describe('a server on the local provider', () => {
  it('refuses what the local provider cannot offer, naming what it can (422, no charge)', async () => {
    const before = await t.bed.balance(alice.account.address);
    const image = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name: 'u', type: 'small', image: 'ubuntu-24.04', ssh_keys: [keyId] },
      }),
    );
    expect(image.status).toBe(422);
    expect(image.body.error.message).toContain('it offers: debian-12');
    expect(image.body.error.field).toBe('body.image');
    const arm = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name: 'u', type: 'arm-small', image: 'debian-12', ssh_keys: [keyId] },
      }),
    );
    expect(arm.status).toBe(422);
    expect(arm.body.error.details.offered).toEqual(['small', 'medium', 'large']);
    const location = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name: 'u', type: 'small', image: 'debian-12', location: 'nbg1', ssh_keys: [keyId] },
      }),
    );
    expect(location.status).toBe(422);
    expect(location.body.error.message).toContain('it offers: local');
    expect(await t.bed.balance(alice.account.address)).toBe(before);
  });

  it('refuses invalid names (400)', async () => {
    for (const name of ['Web_1', '-web', 'a'.repeat(64), 'web 1', '']) {
      const res = await json(
        await alice.fetch('/v1/servers', {
          method: 'POST',
          json: { name, type: 'small', image: 'debian-12', ssh_keys: [keyId] },
        }),
      );
      expect([name, res.status, res.body.error.field]).toEqual([name, 400, 'body.name']);
    }
  });

  it('creates a server with a registered key, reserving the deposit', async () => {
    const res = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        headers: { 'idempotency-key': 'create-web-1' },
        json: {
          name: 'web-1',
          type: 'small',
          image: 'debian-12',
          ssh_keys: ['laptop'],
          user_data: '#!/bin/bash\necho "user data ran as $(id -un)" > ~/user-data-ran\n',
        },
      }),
    );
    expect(res.status).toBe(201);
    expect(res.body.server).toMatchObject({
      name: 'web-1',
      status: 'initializing',
      type: 'small',
      location: 'local',
      cores: 2,
    });
    expect(res.body.action).toMatchObject({ command: 'create_server', status: 'running' });
    serverId = res.body.server.id;
    expect(res.body).toMatchObject({ deposit_charged: '5.00', deposit_remaining: '5.00' });
    // The same Idempotency-Key is one server and one charge.
    const again = await alice.fetch('/v1/servers', {
      method: 'POST',
      headers: { 'idempotency-key': 'create-web-1' },
      json: {
        name: 'web-1',
        type: 'small',
        image: 'debian-12',
        ssh_keys: ['laptop'],
        user_data: '#!/bin/bash\necho "user data ran as $(id -un)" > ~/user-data-ran\n',
      },
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(((await again.json()) as any).server.id).toBe(serverId);

    const action = await t.waitForAction(alice, res.body.action.id);
    expect(action).toMatchObject({ status: 'success', progress: 100, error: null });
    const server = await json(await alice.fetch(`/v1/servers/${serverId}`));
    expect(server.body.server).toMatchObject({ status: 'running', public_net: { ipv4: '127.0.0.1' } });
    expect(server.body.server.ssh).toMatchObject({ host: '127.0.0.1', user: 'root' });
    expect(server.body.server.deposit).toMatchObject({
      remaining: '5.00',
      burn_per_day: '0.15',
      auto_destroy_at: null,
    });
    endpoint = server.body.server.ssh;
    const balance = await json(await alice.signed('/v1/balance'));
    expect(balance.body).toMatchObject({ available: '5.00', reserved: '5.00', balance: '10.00' });
  });

  it('lets the owner SSH in with a real client, and user_data ran once at first boot', async () => {
    const result = await ssh(keys.privateKey, endpoint, 'id -un; cat ~/user-data-ran; hostname; echo $HOME');
    expect(result.stderr, JSON.stringify(await (await t.sandboxes.manager.open(serverId)).output())).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('root\nuser data ran as root\nweb-1\n/root\n');
    // The login is its own unprivileged uid, with no network.
    const id = await ssh(keys.privateKey, endpoint, 'id -u; cat /proc/self/status | grep Seccomp:; ip -o link | wc -l');
    expect(Number(id.stdout.split('\n')[0])).toBeGreaterThanOrEqual(2_000_000);
    expect(id.stdout).toContain('Seccomp:\t2');
    expect(id.stdout.trim().split('\n').at(-1)).toBe('1');
  });

  it('cannot reach the host’s services (spawn itself, the devnet, the database) from inside', async () => {
    const ports = [
      Number(new URL(t.url).port),
      Number(new URL(t.bed.devnet.rpcUrl).port),
      Number(new URL(t.database.url).port),
      endpoint.port,
    ];
    const probe = ports
      .map((p) => `(echo > /dev/tcp/127.0.0.1/${p}) 2>/dev/null && echo "open ${p}" || echo "closed ${p}"`)
      .join('; ');
    const result = await ssh(keys.privateKey, endpoint, probe);
    expect(result.stdout.trim().split('\n')).toEqual(ports.map((p) => `closed ${p}`));
  });

  it('refuses a key that is not registered', async () => {
    const other = await sshKeyPair();
    try {
      const result = await ssh(other.privateKey, endpoint, 'true');
      expect(result.code).toBe(255);
      expect(result.stderr).toMatch(/Permission denied/);
    } finally {
      await other.cleanup();
    }
  });

  it('keeps servers to their owner: 403 for another wallet, fee credited where it settled first', async () => {
    expect((await json(await mallory.fetch(`/v1/servers/${serverId}`))).status).toBe(403);
    const del = await json(await mallory.fetch(`/v1/servers/${serverId}`, { method: 'DELETE' }));
    expect(del.status).toBe(403);
    expect(del.body.error.details.fee_credited).toBe('0.005');
    expect((await json(await mallory.fetch(`/v1/servers/${serverId}/stop`, { method: 'POST' }))).status).toBe(403);
    expect((await json(await mallory.fetch('/v1/servers'))).body.servers).toEqual([]);
    const action = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server.id;
    expect(action).toBe(serverId);
    // Mallory's key cannot be used, or even named, by Alice.
    const mk = await sshKeyPair();
    const malloryKey = await json(
      await mallory.fetch('/v1/ssh-keys', { method: 'POST', json: { name: 'm', public_key: mk.publicKey } }),
    );
    await mk.cleanup();
    const withForeignKey = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name: 'web-2', type: 'small', image: 'debian-12', ssh_keys: [malloryKey.body.ssh_key.id] },
      }),
    );
    expect(withForeignKey.status).toBe(403);
    expect(
      (await json(await alice.fetch(`/v1/ssh-keys/${malloryKey.body.ssh_key.id}`, { method: 'DELETE' }))).status,
    ).toBe(403);
    expect((await json(await mallory.fetch(`/v1/servers/srv_0000000000000000000000`))).status).toBe(404);
  });

  it('refuses a second server with the same name (409)', async () => {
    const res = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: { name: 'web-1', type: 'small', image: 'debian-12', ssh_keys: [keyId] },
      }),
    );
    expect(res.status).toBe(409);
    expect(res.body.error.field).toBe('body.name');
    // Nothing reserved for it.
    expect((await json(await alice.signed('/v1/balance'))).body.reserved).toBe('5.00');
  });

  it('stops: SSH is refused; starts: SSH works again and the data is kept', async () => {
    await ssh(keys.privateKey, endpoint, 'echo kept > ~/kept.txt');
    const stop = await json(await alice.fetch(`/v1/servers/${serverId}/stop`, { method: 'POST' }));
    expect(stop.status).toBe(201);
    expect(stop.body.server.status).toBe('stopping');
    expect((await t.waitForAction(alice, stop.body.action.id)).status).toBe('success');
    expect((await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server.status).toBe('off');
    expect(await refused(endpoint.port)).toBe(true);
    expect((await ssh(keys.privateKey, endpoint, 'true')).code).toBe(255);
    // Stopping a stopped server is a state conflict.
    expect((await json(await alice.fetch(`/v1/servers/${serverId}/stop`, { method: 'POST' }))).status).toBe(409);

    const start = await json(await alice.fetch(`/v1/servers/${serverId}/start`, { method: 'POST' }));
    expect(start.body.server.status).toBe('initializing');
    expect((await t.waitForAction(alice, start.body.action.id)).status).toBe('success');
    const server = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.status).toBe('running');
    endpoint = server.ssh;
    expect((await ssh(keys.privateKey, endpoint, 'cat ~/kept.txt')).stdout).toBe('kept\n');
  });

  it('reboots', async () => {
    await ssh(keys.privateKey, endpoint, 'echo gone > /tmp/volatile');
    const reboot = await json(await alice.fetch(`/v1/servers/${serverId}/reboot`, { method: 'POST' }));
    expect((await t.waitForAction(alice, reboot.body.action.id)).status).toBe('success');
    endpoint = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server.ssh;
    expect((await ssh(keys.privateKey, endpoint, 'cat /tmp/volatile 2>&1 || echo none')).stdout).toContain('none');
  });

  it('resizes a running server by stopping it first, then running it with the new limits', async () => {
    await ssh(keys.privateKey, endpoint, 'echo before > /tmp/before-resize');
    const before = (await json(await alice.signed('/v1/balance'))).body;
    const res = await json(
      await alice.fetch(`/v1/servers/${serverId}/resize`, { method: 'POST', json: { type: 'medium' } }),
    );
    expect(res.status).toBe(201);
    expect(res.body.server.status).toBe('migrating');
    const action = await t.waitForAction(alice, res.body.action.id);
    expect(action).toMatchObject({ command: 'resize_server', status: 'success' });
    const server = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server).toMatchObject({ status: 'running', type: 'medium', cores: 4, memory_gb: 8, disk_gb: 40 });
    expect(server.deposit).toMatchObject({ remaining: '7.50', burn_per_day: '0.22' });
    // It was stopped: what lived in memory is gone.
    endpoint = server.ssh;
    expect((await ssh(keys.privateKey, endpoint, 'cat /tmp/before-resize 2>&1 || echo gone')).stdout).toContain('gone');
    const stats = await (await t.sandboxes.manager.open(serverId)).stats();
    expect(stats.memory.limitBytes).toBe(8 * 1024 ** 3);
    expect(stats.cpu.quotaCores).toBe(4);
    // medium's deposit is 2.50 more than small's: reserved from the available balance.
    const after = (await json(await alice.signed('/v1/balance'))).body;
    expect(after.reserved).toBe('7.50');
    expect(BigInt(after.available_atomic)).toBe(BigInt(before.available_atomic) - 2_500_000n);
  });

  it('never shrinks the disk', async () => {
    const up = await json(
      await alice.fetch(`/v1/servers/${serverId}/resize`, {
        method: 'POST',
        json: { type: 'large', upgrade_disk: true },
      }),
    );
    expect(up.status).toBe(422); // large needs 5.50 more deposit than available
    expect(up.body.error.code).toBe('insufficient_deposit');
  });

  it('rebuilds: the disk is wiped, the keys applied again and user_data run again', async () => {
    await ssh(keys.privateKey, endpoint, 'echo precious > ~/precious.txt');
    const res = await json(
      await alice.fetch(`/v1/servers/${serverId}/rebuild`, { method: 'POST', json: { image: 'debian-12' } }),
    );
    expect(res.status).toBe(201);
    expect(res.body.server.status).toBe('rebuilding');
    expect((await t.waitForAction(alice, res.body.action.id)).status).toBe('success');
    const server = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server;
    expect(server.status).toBe('running');
    endpoint = server.ssh;
    const after = await ssh(keys.privateKey, endpoint, 'ls ~; cat ~/precious.txt 2>&1 || true');
    expect(after.code).toBe(0);
    expect(after.stdout).not.toContain('precious\n');
    expect(after.stdout).toContain('user-data-ran');
    expect(after.stdout).toContain('No such file');
  });

  it('refuses an action while another is running (409)', async () => {
    const stop = await json(await alice.fetch(`/v1/servers/${serverId}/reboot`, { method: 'POST' }));
    const second = await json(await alice.fetch(`/v1/servers/${serverId}/stop`, { method: 'POST' }));
    expect(second.status).toBe(409);
    expect(second.body.error.details.fee_credited).toBe('0.002');
    await t.waitForAction(alice, stop.body.action.id);
    endpoint = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server.ssh;
  });

  it('shows actions only to their owner', async () => {
    const reboot = await json(await alice.fetch(`/v1/servers/${serverId}/reboot`, { method: 'POST' }));
    expect((await mallory.signed(`/v1/actions/${reboot.body.action.id}`)).status).toBe(403);
    expect((await t.waitForAction(alice, reboot.body.action.id)).status).toBe('success');
    endpoint = (await json(await alice.fetch(`/v1/servers/${serverId}`))).body.server.ssh;
  });

  it('destroys: the sandbox and its files are gone, SSH refused, the unused deposit refunded', async () => {
    const sandboxDir = `${t.sandboxes.stateDir}/sandboxes/${serverId}`;
    expect(existsSync(sandboxDir)).toBe(true);
    const before = (await json(await alice.signed('/v1/balance'))).body;
    const res = await json(await alice.fetch(`/v1/servers/${serverId}`, { method: 'DELETE' }));
    expect(res.status).toBe(200);
    expect(res.body.server.status).toBe('destroying');
    expect(res.body.deposit_refund).toBe('7.50');
    expect((await t.waitForAction(alice, res.body.action.id)).status).toBe('success');
    expect(existsSync(sandboxDir)).toBe(false);
    expect(await refused(endpoint.port)).toBe(true);
    expect((await t.sandboxes.manager.list()).map((s) => s.id)).not.toContain(serverId);
    const after = (await json(await alice.signed('/v1/balance'))).body;
    expect(BigInt(after.available_atomic)).toBe(BigInt(before.available_atomic) + 7_500_000n);
    expect(after.reserved).toBe('0.00');
    const entries = await t.service.ledger.entries(alice.account.address);
    expect(entries[0]).toMatchObject({ kind: 'refund', amount: 7_500_000n, server_id: serverId });
    // Gone from the list, still visible with ?status=destroyed.
    expect((await json(await alice.fetch('/v1/servers'))).body.servers).toEqual([]);
    const destroyed = (await json(await alice.fetch('/v1/servers?status=destroyed'))).body.servers;
    expect(destroyed.map((s: any) => s.id)).toEqual([serverId]);
    // Its name is free again.
    expect((await json(await alice.fetch(`/v1/servers/${serverId}/start`, { method: 'POST' }))).status).toBe(404);
  });

  it('needs a key on the local provider, and refuses #cloud-config user_data', async () => {
    const noKey = await json(
      await alice.fetch('/v1/servers', { method: 'POST', json: { name: 'k', type: 'small', image: 'debian-12' } }),
    );
    expect(noKey.status).toBe(422);
    expect(noKey.body.error.field).toBe('body.ssh_keys');
    const cloud = await json(
      await alice.fetch('/v1/servers', {
        method: 'POST',
        json: {
          name: 'k',
          type: 'small',
          image: 'debian-12',
          ssh_keys: [keyId],
          user_data: '#cloud-config\nruncmd: []\n',
        },
      }),
    );
    expect(cloud.status).toBe(422);
    expect(cloud.body.error.field).toBe('body.user_data');
  });
});

describe('without sandboxes (e.g. not running as root)', () => {
  it('says so on /v1/health and refuses to create servers with 503 before any payment', async () => {
    const { LocalProvider } = await import('../src/providers/local.js');
    const { createSpawnService } = await import('../src/service.js');
    const { createLogger } = await import('@agentstack/core');
    const { PgX402Store, PaymentGate } = await import('@agentstack/x402');
    const { listen } = await import('@agentstack/x402/testing');
    const { randomBytes } = await import('node:crypto');
    const store = new PgX402Store(t.database.pool);
    const service = createSpawnService({
      db: t.database.db,
      gate: new PaymentGate({
        facilitator: t.bed.facilitator,
        network: t.bed.devnet.chain.network,
        payTo: t.bed.devnet.accounts.payee.address,
        asset: t.bed.devnet.chain.usdc,
        store,
        serviceName: 'spawn.sh',
      }),
      x402Store: store,
      provider: new LocalProvider({ manager: undefined, unavailable: 'not running as root', catalog: t.catalog }),
      catalog: t.catalog,
      clock: t.clock,
      log: createLogger({ name: 'unavailable', level: 'silent' }),
      masterSecret: randomBytes(32),
    });
    const server = await listen(service.app);
    try {
      const health = await json(await fetch(`${server.url}/v1/health`));
      expect(health.body).toEqual({
        status: 'ok',
        provider: 'local',
        provider_available: false,
        reason: 'not running as root',
      });
      const create = await json(
        await fetch(`${server.url}/v1/servers`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'x', type: 'small', image: 'debian-12', ssh_keys: ['k'] }),
        }),
      );
      expect(create.status).toBe(503);
      expect(create.body.error).toMatchObject({ code: 'upstream_unavailable' });
      expect(create.body.error.message).toContain('not running as root');
    } finally {
      await server.close();
      await service.close();
    }
  });
});
