import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlockedDestinationError,
  createSafeFetch,
  type Resolver,
  ResponseTooLargeError,
  TooManyRedirectsError,
} from '../src/safe-fetch.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];

async function serve(handler: Handler, host = '127.0.0.1'): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

async function serveOn(port: number, host: string, handler: Handler): Promise<void> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
}

afterAll(async () => {
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
});

/** A resolver that answers from a table and counts the questions. */
function fakeDns(table: Record<string, string | string[]>) {
  const asked: string[] = [];
  const resolve: Resolver = async (hostname) => {
    asked.push(hostname);
    const entry = table[hostname];
    if (!entry) throw new Error('ENOTFOUND');
    return (Array.isArray(entry) ? entry : [entry]).map((address) => ({
      address,
      family: address.includes(':') ? 6 : 4,
    }));
  };
  return { resolve, asked };
}

describe('createSafeFetch', () => {
  let port: number;
  beforeAll(async () => {
    port = await serve((req, res) => {
      if (req.url === '/big') {
        res.end('x'.repeat(2_000));
        return;
      }
      if (req.url?.startsWith('/redirect-to/')) {
        res.writeHead(302, { location: decodeURIComponent(req.url.slice('/redirect-to/'.length)) });
        res.end();
        return;
      }
      if (req.url === '/loop') {
        res.writeHead(307, { location: '/loop' });
        res.end();
        return;
      }
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            body,
            host: req.headers.host,
            authorization: req.headers.authorization ?? null,
          }),
        );
      });
    });
  });

  it('refuses loopback and private literals, other schemes and credentials in the URL', async () => {
    const safeFetch = createSafeFetch();
    for (const url of [
      `http://127.0.0.1:${port}/`,
      `http://[::1]:${port}/`,
      `http://[::ffff:127.0.0.1]:${port}/`,
      `http://2130706433:${port}/`, // 127.0.0.1 as one number: the URL parser normalises it first
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/',
      'file:///etc/passwd',
      'ftp://example.com/',
      'http://user:pass@8.8.8.8/',
    ]) {
      await expect(safeFetch(url), url).rejects.toBeInstanceOf(BlockedDestinationError);
    }
  });

  it('refuses a public-looking name that resolves to a private address, without connecting', async () => {
    const dns = fakeDns({ 'api.public.example': '127.0.0.1', 'mixed.example': ['93.184.216.34', '10.0.0.7'] });
    const safeFetch = createSafeFetch({ resolve: dns.resolve });
    const err = await safeFetch(`http://api.public.example:${port}/`).catch((e) => e);
    expect(err).toBeInstanceOf(BlockedDestinationError);
    expect(err.address).toBe('127.0.0.1');
    // One private answer among public ones taints the name.
    await expect(safeFetch('http://mixed.example/')).rejects.toBeInstanceOf(BlockedDestinationError);
  });

  it('reaches an allow-listed host, passes method, headers and body through', async () => {
    const dns = fakeDns({ 'internal.test': '127.0.0.1' });
    const safeFetch = createSafeFetch({ resolve: dns.resolve, allowHosts: ['INTERNAL.test'] });
    const res = await safeFetch(`http://internal.test:${port}/echo?q=1`, {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(res.status).toBe(200);
    expect(res.url).toBe(`http://internal.test:${port}/echo?q=1`);
    expect(await res.json()).toEqual({
      method: 'POST',
      url: '/echo?q=1',
      body: 'hello',
      host: `internal.test:${port}`,
      authorization: 'Bearer x',
    });
  });

  it('connects to the address it checked, even if the name would answer differently a second time', async () => {
    // Two servers on one port: 127.0.0.1 (the checked answer) and 127.0.0.2 (what a rebinding DNS says next).
    const rebindPort = await serve((_req, res) => res.end('checked'));
    await serveOn(rebindPort, '127.0.0.2', (_req, res) => res.end('rebound'));
    const answers = ['127.0.0.1', '127.0.0.2'];
    let asked = 0;
    const safeFetch = createSafeFetch({
      allowHosts: ['rebind.test'],
      resolve: async () => [{ address: answers[Math.min(asked++, 1)]!, family: 4 }],
    });
    const res = await safeFetch(`http://rebind.test:${rebindPort}/`);
    expect(await res.text()).toBe('checked');
    expect(asked).toBe(1);
  });

  it('re-checks every redirect hop: a redirect to a private address is refused', async () => {
    const dns = fakeDns({ 'redirector.test': '127.0.0.1', 'metadata.test': '169.254.169.254' });
    const safeFetch = createSafeFetch({ resolve: dns.resolve, allowHosts: ['redirector.test'] });
    for (const target of [`http://127.0.0.1:${port}/secret`, 'http://metadata.test/latest', 'http://[fd00::1]/']) {
      const err = await safeFetch(`http://redirector.test:${port}/redirect-to/${encodeURIComponent(target)}`).catch(
        (e) => e,
      );
      expect(err, target).toBeInstanceOf(BlockedDestinationError);
    }
  });

  it('follows allowed redirects, dropping credentials across origins, and caps their number', async () => {
    const dns = fakeDns({ 'a.test': '127.0.0.1', 'b.test': '127.0.0.1' });
    const safeFetch = createSafeFetch({ resolve: dns.resolve, allowHosts: ['a.test', 'b.test'], maxRedirects: 3 });
    const res = await safeFetch(
      `http://a.test:${port}/redirect-to/${encodeURIComponent(`http://b.test:${port}/landed`)}`,
      { headers: { authorization: 'Bearer secret' } },
    );
    const body = (await res.json()) as { url: string; host: string; authorization: string | null };
    expect(body).toMatchObject({ url: '/landed', host: `b.test:${port}`, authorization: null });
    expect(res.redirected).toBe(true);
    await expect(safeFetch(`http://a.test:${port}/loop`)).rejects.toBeInstanceOf(TooManyRedirectsError);
  });

  it('caps the response size', async () => {
    const safeFetch = createSafeFetch({ allowHosts: ['127.0.0.1'], maxResponseBytes: 1_000 });
    await expect(safeFetch(`http://127.0.0.1:${port}/big`)).rejects.toBeInstanceOf(ResponseTooLargeError);
    const ok = createSafeFetch({ allowHosts: ['127.0.0.1'], maxResponseBytes: 5_000 });
    expect((await (await ok(`http://127.0.0.1:${port}/big`)).text()).length).toBe(2_000);
  });
});
