import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError, errorHandler, notFoundHandler, rateLimited } from '../src/errors.js';
import { validate } from '../src/http.js';

function app() {
  const a = new Hono();
  a.onError(errorHandler());
  a.notFound(notFoundHandler);
  a.get('/boom', () => {
    throw new Error('database password is hunter2 at /secret/path');
  });
  a.get('/known', () => {
    throw new AppError('policy_violation', 'maxPerTx exceeded', 422, { details: { rule: 'maxPerTx' } });
  });
  a.get('/slow-down', () => {
    throw rateLimited('too many requests', 12.2);
  });
  a.post('/things', validate('json', z.object({ amount: z.string(), to: z.string().min(3) })), (c) =>
    c.json(c.req.valid('json')),
  );
  a.get('/things', validate('query', z.object({ limit: z.coerce.number().max(100) })), (c) =>
    c.json(c.req.valid('query')),
  );
  return a;
}

describe('error envelope', () => {
  it('never leaks the message or stack of an unexpected error', async () => {
    const res = await app().request('/boom');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal_error', message: 'internal error', status: 500 } });
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('at ');
  });

  it('passes safe errors through with their details', async () => {
    const res = await app().request('/known');
    expect(res.status).toBe(422);
    expect((await res.json()) as any).toEqual({
      error: { code: 'policy_violation', message: 'maxPerTx exceeded', status: 422, details: { rule: 'maxPerTx' } },
    });
  });

  it('sets Retry-After on 429', async () => {
    const res = await app().request('/slow-down');
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('13');
  });

  it('answers unknown routes with a 404 envelope', async () => {
    const res = await app().request('/nope');
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.code).toBe('not_found');
  });

  it('names the offending field of a bad body', async () => {
    const res = await app().request('/things', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 5, to: 'ab' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.field).toBe('body.amount');
    expect(body.error.details.issues.map((i: { field: string }) => i.field)).toEqual(['body.amount', 'body.to']);
  });

  it('refuses malformed JSON and non-JSON bodies with 400, not 500', async () => {
    const malformed = await app().request('/things', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"amount": ',
    });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as any).error.code).toBe('invalid_request');
    const text = await app().request('/things', { method: 'POST', body: 'amount=1' });
    expect(text.status).toBe(400);
    expect(((await text.json()) as any).error.field).toBe('body');
  });

  it('names query fields', async () => {
    const res = await app().request('/things?limit=1000');
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.field).toBe('query.limit');
  });
});
