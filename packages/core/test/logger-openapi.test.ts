import { Writable } from 'node:stream';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type CoreVariables, createLogger, requestLogger } from '../src/logger.js';
import { buildLlmsTxt, buildOpenApi } from '../src/openapi.js';
import { decodeCursor, encodeCursor, paginationQuery, toPage } from '../src/pagination.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { lines, stream };
}

describe('logger', () => {
  it('redacts secrets and tags each request with an id that is echoed back', async () => {
    const { lines, stream } = capture();
    const logger = createLogger({ name: 'test', destination: stream });
    const app = new Hono<{ Variables: CoreVariables }>();
    app.use(requestLogger(logger));
    app.get('/x', (c) => {
      c.get('log').info({ privateKey: '0xsecret', wallet: { agentToken: 'tok' } }, 'handled');
      return c.text('ok');
    });
    const res = await app.request('/x', { headers: { 'x-request-id': 'req_from_upstream_1' } });
    expect(res.headers.get('x-request-id')).toBe('req_from_upstream_1');
    const handled = lines.find((l) => l.msg === 'handled');
    expect(handled?.requestId).toBe('req_from_upstream_1');
    expect(handled?.privateKey).toBe('[redacted]');
    expect((handled as any).wallet.agentToken).toBe('[redacted]');
    expect(lines.find((l) => l.msg === 'request')).toMatchObject({ method: 'GET', path: '/x', status: 200 });

    logger.info(
      {
        sealed_key: 'v1.a.b.c',
        wallet: { sealedKey: 'v1.d.e.f', webhookSecret: 'whsec_1', claimToken: 'wsc_1' },
        headers: { 'x-claim-token': 'wsc_2' },
      },
      'wallet secrets',
    );
    const walletLine = JSON.stringify(lines.find((l) => l.msg === 'wallet secrets'));
    for (const secret of ['v1.a.b.c', 'v1.d.e.f', 'whsec_1', 'wsc_1', 'wsc_2'])
      expect(walletLine).not.toContain(secret);

    const fresh = await app.request('/x', { headers: { 'x-request-id': 'bad id with spaces\n' } });
    expect(fresh.headers.get('x-request-id')).toMatch(/^req_[0-9A-Za-z]{20}$/);
  });
});

describe('openapi and llms.txt', () => {
  const routes = [
    {
      method: 'post' as const,
      path: '/v1/wallets/:address/send',
      summary: 'send USDC or ETH',
      price: '$0.005',
      settlement: 'first' as const,
      idempotent: true,
      params: z.object({ address: z.string() }),
      body: z.object({ to: z.string(), amount: z.string() }),
      response: z.object({ txHash: z.string() }),
    },
  ];
  it('documents every route from its schemas', () => {
    const doc = buildOpenApi({ title: 'wallet.sh', version: '1', description: 'wallets' }, routes) as {
      paths: Record<string, Record<string, Record<string, unknown>>>;
    };
    const op = doc.paths['/v1/wallets/{address}/send']?.post;
    expect(op?.['x-price']).toBe('$0.005');
    expect(op?.['x-settlement']).toBe('first');
    expect(JSON.stringify(op?.requestBody)).toContain('"amount"');
    const txt = buildLlmsTxt({ title: 'wallet.sh', version: '1', description: 'wallets' }, routes);
    expect(txt).toContain('POST /v1/wallets/:address/send — $0.005, settles before the effect');
    expect(txt).toContain('Idempotency-Key');
  });
});

describe('pagination', () => {
  it('round-trips cursors and refuses forged ones', () => {
    const cursor = encodeCursor({ t: '2026-01-01T00:00:00Z', id: 'x' });
    expect(decodeCursor(cursor, z.object({ t: z.string(), id: z.string() }))).toEqual({
      t: '2026-01-01T00:00:00Z',
      id: 'x',
    });
    expect(() => decodeCursor('not-a-cursor', z.object({ t: z.string() }))).toThrow('cursor');
    expect(paginationQuery.parse({})).toEqual({ limit: 25 });
    expect(paginationQuery.safeParse({ limit: '101' }).success).toBe(false);
    const page = toPage(
      [1, 2, 3],
      2,
      (n) => n * 10,
      (n) => ({ n }),
    );
    expect(page.items).toEqual([10, 20]);
    expect(page.nextCursor).not.toBeNull();
  });
});
