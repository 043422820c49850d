import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, startProcess, waitFor } from '@agentstack/core';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEgressProxy, type EgressProxy, type EgressProxyOptions, type Resolver } from '../src/index.js';

/** A real HTTP server on 127.0.0.1 standing in for "some service the tenant must not reach". */
let target: Server;
let targetPort: number;
const seen: { url: string; headers: IncomingHttpHeaders }[] = [];

beforeAll(async () => {
  target = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.alloc(200_000, 1));
      return;
    }
    if (req.url === '/hang') return; // never answers
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end(`hello from target${body ? `: ${body}` : ''}`);
    });
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  targetPort = (target.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => target.close(() => resolve())));

const running: EgressProxy[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.close()));
  seen.length = 0;
});

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger({ name: 'egress-test', level: 'info', destination }), lines };
}

async function start(options: EgressProxyOptions = {}) {
  const proxy = createEgressProxy(options);
  running.push(proxy);
  const at = await proxy.listen({ port: 0 });
  return { proxy, url: at.url!, port: at.port! };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A plain-HTTP request through the proxy in absolute-URI form, as curl and most clients send it. */
function viaProxy(
  proxy: { port?: number; socketPath?: string },
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(proxy.socketPath ? { socketPath: proxy.socketPath } : { host: '127.0.0.1', port: proxy.port }),
        agent: false,
        method: init.method ?? 'GET',
        path: url,
        headers: { ...(URL.canParse(url) ? { host: new URL(url).host } : {}), ...init.headers },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Opens a CONNECT tunnel and speaks plain HTTP inside it (the tunnel is byte-transparent, TLS or not). */
function viaTunnel(proxyPort: number, authority: string, path = '/tunnel'): Promise<Answer & { tunnel: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: authority });
    req.on('connect', (res, socket: Socket, head: Buffer) => {
      if (res.statusCode !== 200) {
        let body = head.toString();
        socket.on('data', (c) => {
          body += c;
        });
        socket.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, tunnel: false }));
        return;
      }
      let raw = '';
      socket.on('data', (c) => {
        raw += c;
      });
      socket.on('close', () => {
        const [head = '', body = ''] = raw.split('\r\n\r\n');
        resolve({ status: Number(head.split(' ')[1]), headers: {}, body, tunnel: true });
      });
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('egress proxy: refusals', () => {
  it('refuses plain HTTP to a loopback service by default, and logs why', async () => {
    const { log, lines } = logSink();
    const { port } = await start({ log });
    const answer = await viaProxy({ port }, `http://127.0.0.1:${targetPort}/secret`);
    expect(answer.status).toBe(403);
    expect(answer.headers['x-egress-refused']).toBe('not_public');
    expect(JSON.parse(answer.body).error).toMatchObject({ code: 'egress_not_public', status: 403 });
    expect(JSON.parse(answer.body).error.message).toContain('127.0.0.1 is a loopback address');
    expect(seen).toHaveLength(0);
    await waitFor(() => lines.find((l) => l.event === 'egress_refused'), { what: 'refusal log line' });
    expect(lines.find((l) => l.event === 'egress_refused')).toMatchObject({
      level: 'warn',
      method: 'GET',
      host: '127.0.0.1',
      port: targetPort,
      reason: 'not_public',
      kind: 'loopback',
    });
  });

  it('refuses CONNECT to a loopback service by default', async () => {
    const { port } = await start();
    const answer = await viaTunnel(port, `127.0.0.1:${targetPort}`);
    expect(answer.tunnel).toBe(false);
    expect(answer.status).toBe(403);
    expect(answer.headers['x-egress-refused']).toBe('not_public');
    expect(answer.body).toContain('loopback');
    expect(seen).toHaveLength(0);
  });

  it('refuses a host name that resolves to a private address (injected resolver), both ways', async () => {
    const resolve: Resolver = async (host) =>
      host === 'intranet.test' ? [{ address: '10.1.2.3', family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
    const { port } = await start({ resolve });
    const plain = await viaProxy({ port }, 'http://intranet.test/');
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body).error.message).toBe(
      'intranet.test resolves to 10.1.2.3, which is a private address; only public addresses may be reached',
    );
    const tunnel = await viaTunnel(port, 'intranet.test:443');
    expect(tunnel.status).toBe(403);
    const tricky = await viaProxy({ port }, `http://anything.test:${targetPort}/`);
    expect(tricky.status).toBe(403);
    expect(seen).toHaveLength(0);
  });

  it('refuses IPv6 loopback, IPv4-mapped and metadata addresses', async () => {
    const { port } = await start();
    for (const authority of [
      `[::1]:${targetPort}`,
      `[::ffff:127.0.0.1]:${targetPort}`,
      '169.254.169.254:80',
      '0.0.0.0:80',
    ]) {
      const answer = await viaTunnel(port, authority);
      expect(answer.status, authority).toBe(403);
    }
    const decimal = await viaProxy({ port }, `http://2130706433:${targetPort}/`);
    expect(decimal.status).toBe(403);
    expect(seen).toHaveLength(0);
  });

  it('answers 502 for names that do not resolve and 400 for requests that are not proxy requests', async () => {
    const resolve: Resolver = async () => {
      throw Object.assign(new Error('no such host'), { code: 'ENOTFOUND' });
    };
    const { port } = await start({ resolve });
    const missing = await viaProxy({ port }, 'http://nowhere.test/');
    expect(missing.status).toBe(502);
    expect(JSON.parse(missing.body).error.code).toBe('egress_unresolvable');
    expect((await viaProxy({ port }, '/relative')).status).toBe(400);
    expect((await viaProxy({ port }, 'https://example.com/')).status).toBe(400);
    expect((await viaTunnel(port, 'no-port-here')).status).toBe(400);
  });

  it('refuses denied addresses even when allow-listed, both ways, with egress_denied', async () => {
    const { port } = await start({ allow: ['127.0.0.1'], deny: ['127.0.0.0/8'] });
    const plain = await viaProxy({ port }, `http://127.0.0.1:${targetPort}/`);
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body).error.code).toBe('egress_denied');
    const tunnel = await viaTunnel(port, `127.0.0.1:${targetPort}`);
    expect([tunnel.status, tunnel.headers['x-egress-refused']]).toEqual([403, 'denied']);
    expect(seen).toHaveLength(0);
  });

  it('refuses ports outside the port allow-list', async () => {
    const { port } = await start({ allow: ['127.0.0.1'], ports: [443] });
    const answer = await viaTunnel(port, `127.0.0.1:${targetPort}`);
    expect(answer.status).toBe(403);
    expect(answer.body).toContain(`port ${targetPort} is not allowed`);
  });
});

describe('egress proxy: allowed traffic', () => {
  it('forwards plain HTTP to an allow-listed address, keeping Host and dropping proxy headers', async () => {
    const { port } = await start({ allow: ['127.0.0.1'] });
    const answer = await viaProxy({ port }, `http://127.0.0.1:${targetPort}/path?q=1`, {
      method: 'POST',
      body: 'ping',
      headers: { 'proxy-authorization': 'Basic c2VjcmV0', 'x-custom': 'kept' },
    });
    expect(answer).toMatchObject({ status: 200, body: 'hello from target: ping' });
    expect(answer.headers['x-upstream']).toBe('yes');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe('/path?q=1');
    expect(seen[0]!.headers.host).toBe(`127.0.0.1:${targetPort}`);
    expect(seen[0]!.headers['x-custom']).toBe('kept');
    expect(seen[0]!.headers['proxy-authorization']).toBeUndefined();
  });

  it('tunnels CONNECT to an allow-listed address', async () => {
    const { port } = await start({ allow: [`127.0.0.1:${targetPort}`] });
    const answer = await viaTunnel(port, `127.0.0.1:${targetPort}`, '/through-tunnel');
    expect(answer).toMatchObject({ tunnel: true, status: 200 });
    expect(answer.body).toContain('hello from target');
    expect(seen.map((s) => s.url)).toEqual(['/through-tunnel']);
  });

  it('serves undici clients both ways (tunnel and absolute URI)', async () => {
    const { url } = await start({ allow: ['127.0.0.1'] });
    for (const proxyTunnel of [true, false]) {
      const dispatcher = new ProxyAgent({ uri: url, proxyTunnel });
      const res = await undiciFetch(`http://127.0.0.1:${targetPort}/undici`, { dispatcher });
      expect(await res.text()).toBe('hello from target');
      await dispatcher.close();
    }
    const refusing = await start();
    const dispatcher = new ProxyAgent({ uri: refusing.url, proxyTunnel: false });
    const res = await undiciFetch(`http://127.0.0.1:${targetPort}/undici`, { dispatcher });
    expect(res.status).toBe(403);
    await dispatcher.close();
    expect(seen).toHaveLength(2);
  });

  it('resolves once and connects to the exact address it checked (no DNS rebinding)', async () => {
    let calls = 0;
    const resolve: Resolver = async () => {
      calls += 1;
      // A rebinding name: the first answer passes the check, later answers would not.
      return [{ address: calls === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
    };
    const { port } = await start({ allow: ['127.0.0.1/32'], resolve });
    const answer = await viaProxy({ port }, `http://rebind.test:${targetPort}/r`);
    expect(answer.status).toBe(200);
    expect(calls).toBe(1);
    expect(seen[0]!.headers.host).toBe(`rebind.test:${targetPort}`);
    const second = await viaProxy({ port }, `http://rebind.test:${targetPort}/r`);
    expect(second.status).toBe(403);
    expect(seen).toHaveLength(1);
  });

  it('listens on a unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egress-'));
    try {
      const proxy = createEgressProxy({ allow: ['127.0.0.1'] });
      running.push(proxy);
      const socketPath = join(dir, 'egress.sock');
      expect(await proxy.listen({ path: socketPath })).toEqual({ path: socketPath });
      const ok = await viaProxy({ socketPath }, `http://127.0.0.1:${targetPort}/via-socket`);
      expect(ok.body).toBe('hello from target');
      await proxy.close();
      // A process that died without closing leaves its socket file behind; the next listen replaces it.
      const crashed = startProcess(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(socketPath)})`,
      ]);
      await waitFor(() => existsSync(socketPath), { what: 'the socket file' });
      process.kill(crashed.pid, 'SIGKILL');
      await crashed.exited;
      const again = createEgressProxy();
      running.push(again);
      await again.listen({ path: socketPath });
      expect((await viaProxy({ socketPath }, `http://127.0.0.1:${targetPort}/`)).status).toBe(403);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('egress proxy: limits', () => {
  it('cuts a connection that exceeds its byte limit', async () => {
    const { log, lines } = logSink();
    const { port } = await start({ allow: ['127.0.0.1'], limits: { maxBytes: 20_000 }, log });
    const received = await new Promise<number>((resolve) => {
      let total = 0;
      const req = request({ host: '127.0.0.1', port, path: `http://127.0.0.1:${targetPort}/big` }, (res) => {
        res.on('data', (c: Buffer) => {
          total += c.length;
        });
        res.on('close', () => resolve(total));
        res.on('error', () => resolve(total));
      });
      req.on('error', () => resolve(total));
      req.end();
    });
    expect(received).toBeLessThan(200_000);
    await waitFor(() => lines.find((l) => l.event === 'egress_limit' && l.limit === 'max_bytes'), {
      what: 'limit log',
    });
  });

  it('closes idle tunnels', async () => {
    const { port } = await start({ allow: ['127.0.0.1'], limits: { idleTimeoutMs: 200 } });
    const started = Date.now();
    const answer = await viaTunnel(port, `127.0.0.1:${targetPort}`, '/hang');
    expect(answer.tunnel).toBe(true);
    expect(answer.body).toBe('');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('answers 502 when the allowed upstream is down, and 503 past the connection limit', async () => {
    const { port, proxy } = await start({ allow: ['127.0.0.1'], limits: { maxConnections: 1 } });
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = await viaTunnel(port, `127.0.0.1:${deadPort}`);
    expect(down.status).toBe(502);
    expect(down.body).toContain('egress_upstream_failed');

    // Hold one tunnel open, then a second client is turned away.
    await waitFor(() => proxy.connections() === 0, { what: 'the refused tunnel to close' });
    const held = await new Promise<Socket>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'CONNECT', path: `127.0.0.1:${targetPort}` });
      req.on('connect', (res, socket: Socket) => {
        expect(res.statusCode).toBe(200);
        resolve(socket);
      });
      req.on('error', reject);
      req.end();
    });
    const busy = await viaProxy({ port }, `http://127.0.0.1:${targetPort}/`);
    expect(busy.status).toBe(503);
    held.destroy();
  });
});
