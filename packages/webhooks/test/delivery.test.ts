import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookFetch, sendWebhook } from '../src/delivery.js';
import { verifySignature } from '../src/signature.js';

describe('sendWebhook', () => {
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  let answer = { status: 200, body: 'ok' };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(answer.status).end(answer.body);
    });
  });
  let port = 0;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const send = (extra: Partial<Parameters<typeof sendWebhook>[0]> = {}) =>
    sendWebhook({
      url: `http://localhost:${port}/h`,
      secret: 'whsec_abcdefghijklmnop',
      body: '{"n":1}',
      id: 'whd_1',
      event: 'thing.happened',
      fetch: createWebhookFetch({ timeoutMs: 2_000, allowPrivate: true }),
      timeoutMs: 2_000,
      ...extra,
    });

  it('signs the body and names it with the default headers', async () => {
    received.length = 0;
    expect(await send()).toEqual({ statusCode: 200, error: null });
    const [hit] = received;
    expect(hit?.body).toBe('{"n":1}');
    expect(hit?.headers['user-agent']).toBe('agentstack-webhooks/1');
    expect(hit?.headers['x-webhook-id']).toBe('whd_1');
    expect(hit?.headers['x-webhook-event']).toBe('thing.happened');
    const header = hit?.headers['x-signature'] as string;
    expect(verifySignature({ secret: 'whsec_abcdefghijklmnop', header, body: '{"n":1}' }).ok).toBe(true);
  });

  it("uses a service's own header names and user agent", async () => {
    received.length = 0;
    await send({
      headers: { signature: 'x-spawn-signature', id: 'x-spawn-delivery', event: 'x-spawn-event' },
      userAgent: 'spawn.sh-webhooks/1',
      timestamp: 1_700_000_000,
    });
    const headers = received[0]?.headers ?? {};
    expect(headers['x-spawn-delivery']).toBe('whd_1');
    expect(headers['x-spawn-event']).toBe('thing.happened');
    expect(headers['x-spawn-signature']).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(headers['x-signature']).toBeUndefined();
    expect(headers['user-agent']).toBe('spawn.sh-webhooks/1');
  });

  it('reports a non-2xx answer with as much of its body as asked for', async () => {
    answer = { status: 503, body: 'x'.repeat(300) };
    try {
      expect(await send()).toEqual({ statusCode: 503, error: `HTTP 503: ${'x'.repeat(200)}` });
      expect(await send({ errorBodyChars: 120 })).toEqual({ statusCode: 503, error: `HTTP 503: ${'x'.repeat(120)}` });
      expect(await send({ errorBodyChars: 0 })).toEqual({ statusCode: 503, error: 'HTTP 503' });
    } finally {
      answer = { status: 200, body: 'ok' };
    }
  });

  it('refuses a host name or literal that is not a public address, unless private targets are allowed', async () => {
    received.length = 0;
    const strict = createWebhookFetch({ timeoutMs: 2_000 });
    const byName = await send({ fetch: strict });
    expect(byName.statusCode).toBeNull();
    expect(byName.error).toMatch(/non-public address/);
    const byLiteral = await send({ url: `http://127.0.0.1:${port}/h`, fetch: strict });
    expect(byLiteral.error).toMatch(/non-public address/);
    expect(received).toHaveLength(0);
    expect(await send()).toEqual({ statusCode: 200, error: null });
  });
});
