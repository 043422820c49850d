import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readSseJson } from '@agentsquads/runtime/events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyRequest, upstreamHeaders } from '../src/lib/proxy';

/** A real HTTP server standing in for the platform API's wire behaviour (the e2e runs the real one). */
let server: Server;
let upstream: string;
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
let releaseSecondEvent: () => void = () => {};
let upstreamClosed: Promise<void> = Promise.resolve();

beforeAll(async () => {
  server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
    });
    if (req.url === '/api/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      res.write('event: text\ndata: {"type":"text","delta":"one"}\n\n');
      // The second event is only written once the test has received the first: a buffering proxy would hang.
      await new Promise<void>((resolve) => {
        releaseSecondEvent = resolve;
      });
      res.write(': keep-alive\n\nevent: text\ndata: {"type":"text","delta":"two"}\n\n');
      res.end();
      return;
    }
    if (req.url === '/api/endless') {
      upstreamClosed = new Promise((resolve) => res.on('close', () => resolve()));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"type":"text","delta":"…"}\n\n');
      return;
    }
    if (req.url === '/api/auth/callback') {
      res.writeHead(302, { location: '/dashboard/chat' });
      res.end();
      return;
    }
    res.setHeader('set-cookie', ['a=1; Path=/; HttpOnly', 'b=2; Path=/; Max-Age=0']);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const request = (path: string, init: RequestInit = {}) => new Request(`http://localhost:3000${path}`, init);

describe('the /api proxy', () => {
  it('streams SSE through event by event, uncompressed and unbuffered', async () => {
    const res = await proxyRequest(request('/api/stream'), { upstream });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache, no-transform');
    const events = readSseJson(res.body!);
    expect(await events.next()).toMatchObject({ value: { delta: 'one' } });
    releaseSecondEvent();
    expect(await events.next()).toMatchObject({ value: { delta: 'two' } });
    expect((await events.next()).done).toBe(true);
  });

  it('passes every Set-Cookie separately, and the body, method, query and content type upstream', async () => {
    const res = await proxyRequest(
      request('/api/auth/sign-in/email?x=1', {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: 's=1', 'accept-encoding': 'gzip, br' },
        body: JSON.stringify({ email: 'a@b.c' }),
      }),
      { upstream },
    );
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/; HttpOnly', 'b=2; Path=/; Max-Age=0']);
    const last = seen.at(-1)!;
    expect(last).toMatchObject({ method: 'POST', url: '/api/auth/sign-in/email?x=1', body: '{"email":"a@b.c"}' });
    expect(last.headers['content-type']).toBe('application/json');
    expect(last.headers.cookie).toBe('s=1');
    // The upstream answers uncompressed; the body is passed through as is.
    expect(last.headers['accept-encoding']).not.toContain('br');
  });

  it('hands redirects to the browser instead of following them', async () => {
    const res = await proxyRequest(request('/api/auth/callback'), { upstream });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/dashboard/chat');
  });

  it('hangs up upstream when the browser goes away (a stopped chat run)', async () => {
    const controller = new AbortController();
    const res = await proxyRequest(request('/api/endless', { signal: controller.signal }), { upstream });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.cancel().catch(() => undefined);
    await upstreamClosed;
  });

  it('answers 502 in the error envelope when the platform API is down', async () => {
    const res = await proxyRequest(request('/api/health'), { upstream: 'http://127.0.0.1:1' });
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ error: { code: 'upstream_unavailable', status: 502 } });
  });
});

describe('upstreamHeaders', () => {
  const publicOrigin = 'http://127.0.0.1:3000';

  it('rewrites the Origin of a request that is same-origin to this app (localhost vs 127.0.0.1)', () => {
    const headers = upstreamHeaders(
      request('/api/auth/sign-up/email', { headers: { origin: 'http://localhost:3000', host: 'localhost:3000' } }),
      publicOrigin,
    );
    expect(headers.get('origin')).toBe(publicOrigin);
    expect(headers.get('host')).toBeNull();
  });

  it('leaves a foreign Origin alone, so the platform API refuses it', () => {
    const headers = upstreamHeaders(
      request('/api/account', {
        method: 'DELETE',
        headers: { origin: 'https://evil.example', host: 'localhost:3000' },
      }),
      publicOrigin,
    );
    expect(headers.get('origin')).toBe('https://evil.example');
  });
});
