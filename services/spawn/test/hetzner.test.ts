import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type ManagedProcess, startProcess, waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../src/catalog.js';
import { HetznerProvider } from '../src/providers/hetzner.js';
import { HetznerApiError, HetznerClient } from '../src/providers/hetzner-client.js';
import { ProviderError } from '../src/providers/provider.js';

/**
 * The Hetzner client against Hetzner's published OpenAPI document, served by Prism: Prism answers 422 to any
 * request that does not match the document, and serves responses that do, which our client must parse.
 */
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const candidates = [
  process.env.AGENTSTACK_SHARED_DIR,
  resolve(repoRoot, '../shared'),
  // A git worktree one level further down (…/wt/<branch>) still finds the workspace's shared directory.
  resolve(repoRoot, '../../shared'),
].filter((p): p is string => Boolean(p));
const contract = candidates
  .map((dir) => resolve(dir, 'contracts/hetzner-cloud.openapi.json'))
  .find((p) => existsSync(p));
if (!contract) {
  console.warn(
    `hetzner contract tests skipped: ../shared/contracts/hetzner-cloud.openapi.json not found (looked in ${candidates.join(', ')})`,
  );
}
const prismBin = resolve(here, '../node_modules/.bin/prism');

let prism: ManagedProcess;
let prismUrl: string;

/** A proxy in front of Prism: every request still reaches Prism (and is validated there). */
async function proxy(hooks: {
  before?: (
    method: string,
    path: string,
    count: number,
  ) => { status: number; headers?: Record<string, string> } | undefined;
  rewrite?: (method: string, path: string, body: any) => any;
}) {
  let count = 0;
  const seen: { method: string; path: string; status: number }[] = [];
  const server: Server = createServer(async (req, res) => {
    count += 1;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = req.url ?? '/';
    const injected = hooks.before?.(req.method ?? 'GET', path, count);
    if (injected) {
      seen.push({ method: req.method ?? 'GET', path, status: injected.status });
      res.writeHead(injected.status, { 'content-type': 'application/json', ...injected.headers });
      res.end(
        JSON.stringify({
          error: { code: injected.status === 429 ? 'rate_limit_exceeded' : 'unavailable', message: 'injected' },
        }),
      );
      return;
    }
    const upstream = await fetch(`${prismUrl}${path}`, {
      method: req.method ?? 'GET',
      headers: Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => ['authorization', 'content-type', 'accept'].includes(k)) as [
          string,
          string,
        ][],
      ),
      ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
    });
    let text = await upstream.text();
    seen.push({ method: req.method ?? 'GET', path, status: upstream.status });
    if (hooks.rewrite && upstream.ok && text)
      text = JSON.stringify(hooks.rewrite(req.method ?? 'GET', path, JSON.parse(text)));
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    res.end(text);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

/** Prism's examples leave actions "running" or "error"; this marks them finished successfully. */
const finishActions = (_method: string, _path: string, body: any) => {
  for (const key of ['action']) {
    if (body?.[key])
      body[key] = { ...body[key], status: 'success', progress: 100, finished: '2016-01-30T23:55:00Z', error: null };
  }
  if (Array.isArray(body?.next_actions)) {
    body.next_actions = body.next_actions.map((a: any) => ({
      ...a,
      status: 'success',
      finished: '2016-01-30T23:55:00Z',
      error: null,
    }));
  }
  if (body?.server?.status) body.server.status = 'off';
  // Keys spawn registered carry its label (the contract's example key does not).
  if (Array.isArray(body?.ssh_keys))
    body.ssh_keys = body.ssh_keys.map((k: any) => ({ ...k, labels: { 'managed-by': 'spawn' } }));
  return body;
};

describe.skipIf(!contract)('Hetzner Cloud client against the published OpenAPI contract (Prism)', () => {
  beforeAll(async () => {
    const port = await freePort();
    prism = startProcess(prismBin, ['mock', '-h', '127.0.0.1', '-p', String(port), contract as string]);
    prismUrl = `http://127.0.0.1:${port}`;
    await waitFor(() => prism.output().includes('Prism is listening'), {
      timeoutMs: 90_000,
      intervalMs: 200,
      what: 'Prism',
    });
  });
  afterAll(async () => {
    await prism?.stop();
  });

  const client = (baseUrl = prismUrl, extra: Partial<ConstructorParameters<typeof HetznerClient>[0]> = {}) =>
    new HetznerClient({ token: 'test-token', baseUrl, pollMs: 10, ...extra });

  it('is refused by the contract for an invalid request (Prism validates)', async () => {
    const error = await client()
      .request('POST', '/servers', { body: { name: 1 }, schema: (await import('zod')).z.unknown() })
      .catch((err: HetznerApiError) => err);
    expect(error).toBeInstanceOf(HetznerApiError);
    expect((error as HetznerApiError).status).toBe(422);
  });

  it('makes every call spawn.sh makes in a form the contract accepts, and parses every answer', async () => {
    const c = client();
    const created = await c.createServer({
      name: 'web-1-abcdefgh',
      server_type: 'cx23',
      image: 'debian-12',
      location: 'nbg1',
      ssh_keys: ['spawn-key1'],
      user_data: '#cloud-config\nruncmd: []\n',
      labels: { wallet: '0x8ba1f109551bD432803012645Ac136ddd64DBA72', 'spawn-id': 'srv_abc', 'managed-by': 'spawn' },
      start_after_create: true,
    });
    expect(created.server.id).toBeTypeOf('number');
    expect(created.action.command).toBe('create_server');
    expect((await c.getServer(42)).name).toBeTypeOf('string');
    expect((await c.listServers({ labelSelector: 'managed-by=spawn' })).length).toBeGreaterThan(0);
    expect(Array.isArray(await c.listServers({ name: 'web-1-abcdefgh' }))).toBe(true);
    for (const action of ['poweron', 'shutdown', 'poweroff', 'reboot'] as const) {
      expect((await c.serverAction(42, action)).id).toBeTypeOf('number');
    }
    expect((await c.changeType(42, { server_type: 'cx33', upgrade_disk: false })).command).toBeTypeOf('string');
    expect((await c.rebuild(42, { image: 'debian-12' })).action.id).toBeTypeOf('number');
    expect((await c.rebuild(42, { image: 'debian-12', user_data: '#!/bin/sh\ntrue\n' })).action.id).toBeTypeOf(
      'number',
    );
    expect((await c.getAction(13)).status).toMatch(/running|success|error/);
    expect((await c.deleteServer(42)).id).toBeTypeOf('number');
    expect(
      (await c.listSshKeys({ fingerprint: 'b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2f' }))[0]?.fingerprint,
    ).toMatch(/^[0-9a-f:]+$/);
    const key = await c.createSshKey({
      name: 'spawn-key1',
      public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJp3Z4ZzR0bK2Jx0pQeYfYt1Xl5kXjvM2sX3hYQJ9bB',
      labels: { 'managed-by': 'spawn' },
    });
    expect(key.id).toBeTypeOf('number');
    await c.deleteSshKey(42);
  });

  it('reports a failed action as a provider error (the contract’s example action failed)', async () => {
    const provider = new HetznerProvider({ client: client(), catalog: DEFAULT_CATALOG, pollMs: 10 });
    const error = await provider.powerOn('42').catch((err) => err);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe('action_failed');
  });

  it('runs the provider’s flows (create, power, resize, rebuild, delete) through the contract', async () => {
    const p = await proxy({ rewrite: finishActions });
    try {
      const provider = new HetznerProvider({
        client: client(p.url),
        catalog: DEFAULT_CATALOG,
        pollMs: 10,
        shutdownTimeoutMs: 1_000,
      });
      const created = await provider.create({
        serverId: 'srv_ABCDEFGHIJKLMNOPQRSTUV',
        name: 'web-1',
        type: DEFAULT_CATALOG.types.small as never,
        image: 'debian-12',
        location: 'nbg1',
        sshKeys: [
          {
            id: 'key_1',
            name: 'laptop',
            publicKey: 'ssh-ed25519 AAAA',
            md5: 'b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2f',
          },
        ],
        labels: { wallet: '0x8ba1f109551bD432803012645Ac136ddd64DBA72', 'spawn-id': 'srv_ABCDEFGHIJKLMNOPQRSTUV' },
      });
      expect(created.server.providerId).toBe('42');
      expect(created.server.location).toBeTypeOf('string');
      expect(created.rootPassword).toBeTypeOf('string');
      const createCall = p.seen.find((s) => s.method === 'POST' && s.path === '/servers');
      expect(createCall?.status).toBe(201);
      await provider.powerOn('42');
      await provider.shutdown('42');
      await provider.reboot('42');
      await provider.changeType('42', DEFAULT_CATALOG.types.medium as never, true);
      await provider.rebuild('42', 'debian-12', [], '#cloud-config\n');
      await provider.delete('42');
      await provider.removeSshKey('b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2f');
      expect((await provider.list()).length).toBeGreaterThan(0);
      // Prism accepted every request spawn made (a 422 would mean one did not match the contract).
      expect(p.seen.filter((s) => s.status >= 400)).toEqual([]);
      expect(p.seen.map((s) => `${s.method} ${s.path.split('?')[0]}`)).toEqual(
        expect.arrayContaining([
          'POST /servers',
          'POST /servers/42/actions/poweron',
          'POST /servers/42/actions/shutdown',
          'POST /servers/42/actions/reboot',
          'POST /servers/42/actions/change_type',
          'POST /servers/42/actions/rebuild',
          'DELETE /servers/42',
          'GET /ssh_keys',
          'DELETE /ssh_keys/42',
        ]),
      );
    } finally {
      await p.close();
    }
  });

  it('waits out 429 with Retry-After, and retries a 5xx read with backoff', async () => {
    const p = await proxy({
      before: (method, _path, count) => {
        if (count === 1) return { status: 429, headers: { 'retry-after': '1' } };
        if (count === 2 && method === 'GET') return { status: 503 };
        return undefined;
      },
    });
    try {
      const started = Date.now();
      const server = await client(p.url).getServer(42);
      expect(server.id).toBe(42);
      expect(p.seen.map((s) => s.status)).toEqual([429, 503, 200]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    } finally {
      await p.close();
    }
  });

  it('does not repeat a create after a 5xx (it could make two servers); it looks the name up instead', async () => {
    const p = await proxy({
      before: (method, path) => (method === 'POST' && path === '/servers' ? { status: 502 } : undefined),
      rewrite: (method, path, body) => {
        if (method === 'GET' && path.startsWith('/servers/42') && body?.server) body.server.status = 'running';
        return body;
      },
    });
    try {
      const provider = new HetznerProvider({ client: client(p.url), catalog: DEFAULT_CATALOG, pollMs: 10 });
      const created = await provider.create({
        serverId: 'srv_ABCDEFGHIJKLMNOPQRSTUV',
        name: 'web-1',
        type: DEFAULT_CATALOG.types.small as never,
        image: 'debian-12',
        location: 'nbg1',
        sshKeys: [],
        labels: {},
      });
      expect(p.seen.filter((s) => s.method === 'POST' && s.path === '/servers').length).toBe(1);
      expect(p.seen.some((s) => s.path.startsWith('/servers?') && s.path.includes('name=web-1-abcdefghij'))).toBe(true);
      expect(created.server.status).toBe('running');
    } finally {
      await p.close();
    }
  });

  it('keeps to the hourly request budget', async () => {
    const c = client(prismUrl, { requestsPerHour: 3, maxWaitMs: 100 });
    for (let i = 0; i < 3; i++) await c.getServer(42);
    const error = await c.getServer(42).catch((err) => err);
    expect(error).toBeInstanceOf(HetznerApiError);
    expect(error.code).toBe('rate_limited');
    expect(c.requestsInLastHour()).toBe(3);
  });

  it('honours the server’s RateLimit-Remaining: 0 until RateLimit-Reset', async () => {
    let calls = 0;
    const resetAt = Math.floor(Date.now() / 1000) + 3_600;
    const fake = createServer((_req, res) => {
      calls += 1;
      res.writeHead(200, {
        'content-type': 'application/json',
        'ratelimit-remaining': '0',
        'ratelimit-reset': String(resetAt),
      });
      res.end(JSON.stringify({ ssh_keys: [] }));
    });
    await new Promise<void>((done) => fake.listen(0, '127.0.0.1', done));
    try {
      const c = client(`http://127.0.0.1:${(fake.address() as { port: number }).port}`, { maxWaitMs: 100 });
      expect(await c.listSshKeys({})).toEqual([]);
      const error = await c.listSshKeys({}).catch((err) => err);
      expect(error.code).toBe('rate_limited');
      expect(calls).toBe(1);
    } finally {
      await new Promise<void>((done) => fake.close(() => done()));
    }
  });
});

describe('status mapping', () => {
  it('maps Hetzner’s states to the contract’s', async () => {
    const { mapProviderStatus } = await import('../src/providers/provider.js');
    expect(
      [
        'initializing',
        'starting',
        'running',
        'stopping',
        'off',
        'deleting',
        'migrating',
        'rebuilding',
        'unknown',
        'weird',
      ].map(mapProviderStatus),
    ).toEqual([
      'initializing',
      'initializing',
      'running',
      'stopping',
      'off',
      'destroying',
      'migrating',
      'rebuilding',
      'unknown',
      'unknown',
    ]);
  });

  it('names servers uniquely per project within Hetzner’s 63 characters', () => {
    const name = HetznerProvider.providerName('a'.repeat(63), 'srv_ABCDEFGHIJKLMNOPQRSTUV');
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^a+-abcdefghij$/);
  });
});
