import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  gatewayRuntimeEnv,
  hostAddresses,
  INSIDE,
  SOCKET_TENANT_HEADER,
  TenantGateway,
} from '../../src/orchestrator/gateway.js';

const quiet = { info() {}, warn() {} };

/** One HTTP request over a unix socket; resolves with status and body. */
function viaSocket(socketPath: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath, path, headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TenantGateway', () => {
  const root = mkdtempSync(join(tmpdir(), 'gateway-'));
  const llm = createServer((req, res) => res.end(`llm saw ${req.method} ${req.url}`));
  const platform = createServer((req, res) => res.end(`platform saw ${req.url}`));
  let gateway: TenantGateway;

  beforeAll(async () => {
    llm.listen(0, '127.0.0.1');
    platform.listen(0, '127.0.0.1');
    await Promise.all([once(llm, 'listening'), once(platform, 'listening')]);
    gateway = new TenantGateway({
      rootDir: join(root, 'gateways'),
      llmProxy: { host: '127.0.0.1', port: (llm.address() as AddressInfo).port },
      platformApi: { host: '127.0.0.1', port: (platform.address() as AddressInfo).port },
      log: quiet,
    });
  });

  afterAll(async () => {
    await gateway.closeAll();
    llm.close();
    platform.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('hands a tenant exactly three sockets it owns, each leading where it says', async () => {
    const opened = await gateway.open('ten_a', { uid: 4242, gid: 4242 });
    expect(statSync(opened.dir).uid).toBe(4242);
    expect(statSync(opened.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'gateways')).mode & 0o777).toBe(0o711);
    for (const name of ['llm.sock', 'platform.sock', 'egress.sock']) {
      const st = statSync(join(opened.dir, name));
      expect(st.isSocket()).toBe(true);
      expect([st.uid, st.mode & 0o777]).toEqual([4242, 0o600]);
    }
    expect(await viaSocket(join(opened.dir, 'llm.sock'), '/v1/models')).toEqual({
      status: 200,
      body: 'llm saw GET /v1/models',
    });
    expect((await viaSocket(join(opened.dir, 'platform.sock'), '/api/health')).body).toBe('platform saw /api/health');
    // The egress proxy refuses the host's own services (here: the LLM proxy's port on loopback).
    const refused = await viaSocket(
      join(opened.dir, 'egress.sock'),
      `http://127.0.0.1:${(llm.address() as AddressInfo).port}/`,
    );
    expect(refused.status).toBe(403);
    // Also on the host's other addresses, public or not (a public IP would lead to the same services).
    for (const address of hostAddresses().filter((a) => !a.includes(':'))) {
      const viaHostIp = await viaSocket(join(opened.dir, 'egress.sock'), `http://${address}:5432/`);
      expect(viaHostIp.status, address).toBe(403);
      expect(JSON.parse(viaHostIp.body).error.code, address).toBe('egress_denied');
    }
    // Opening again is a no-op.
    expect(await gateway.open('ten_a', { uid: 4242, gid: 4242 })).toEqual(opened);
  });

  it('remove stops the listeners and deletes the directory; ids cannot escape the root', async () => {
    const opened = await gateway.open('ten_b', { uid: 4243, gid: 4243 });
    await gateway.remove('ten_b');
    expect(existsSync(opened.dir)).toBe(false);
    expect(gateway.isOpen('ten_b')).toBe(false);
    await gateway.remove('ten_b');
    expect(() => gateway.dirOf('../etc')).toThrow(/not a tenant id/);
  });

  it('points the runtime at the bridged ports and its own socket', () => {
    const env = gatewayRuntimeEnv();
    expect(env.RUNTIME_SOCKET).toBe(INSIDE.runtimeSocket);
    expect(env.RUNTIME_BRIDGES?.split(',')).toHaveLength(3);
    expect(env.LLM_PROXY_URL).toBe('http://127.0.0.1:8090/v1');
    expect(env.HTTP_PROXY).toBe('http://127.0.0.1:3128');
  });

  it('serves an in-process app on a tenant socket, stamped with the tenant; claimed headers are dropped', async () => {
    const seen: Record<string, string | null>[] = [];
    const appGateway = new TenantGateway({
      rootDir: join(root, 'app-gateways'),
      llmProxy: {
        app: () => ({
          fetch: async (req: Request) => {
            seen.push({
              tenant: req.headers.get(SOCKET_TENANT_HEADER),
              xff: req.headers.get('x-forwarded-for'),
              body: await req.text(),
            });
            return new Response('ok');
          },
        }),
      },
      platformApi: { host: '127.0.0.1', port: (platform.address() as AddressInfo).port },
      log: quiet,
    });
    try {
      const opened = await appGateway.open('ten_c', { uid: 4244, gid: 4244 });
      const res = await viaSocket(join(opened.dir, 'llm.sock'), '/v1/models', {
        [SOCKET_TENANT_HEADER]: 'ten_someone_else',
        'x-forwarded-for': '203.0.113.9',
      });
      expect(res).toEqual({ status: 200, body: 'ok' });
      expect(seen).toEqual([{ tenant: 'ten_c', xff: null, body: '' }]);
    } finally {
      await appGateway.closeAll();
    }
  });
});
