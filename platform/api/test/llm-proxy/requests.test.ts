import type { LLMock } from '@copilotkit/aimock';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateApiKey } from '../../src/api-keys.js';
import { type ProxyTestbed, startAimock, startProxyTestbed, TEST_MODELS, usageFor } from '../support/proxy.js';

let mock: LLMock;
let tb: ProxyTestbed;

beforeAll(async () => {
  mock = await startAimock();
  mock.on({ userMessage: 'hello' }, { content: 'Hi!', usage: usageFor(10, 2) });
  tb = await startProxyTestbed({
    upstreamUrl: mock.url,
    env: { LLM_PROXY_MAX_BODY_BYTES: '20000' },
    models: [
      ...TEST_MODELS,
      { ...TEST_MODELS[0]!, name: 'test-disabled', enabled: false },
      { ...TEST_MODELS[0]!, name: 'vendor/model:7b-q4', upstream_model: 'vendor-model' },
    ],
  });
});
afterAll(async () => {
  await tb?.stop();
  await mock?.stop();
});

/** A raw request, to see exactly what the proxy answers. */
async function post(body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${tb.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

/** OpenAI's error shape, exactly: message, type, param, code and nothing else. */
function expectOpenAIError(body: any, expected: { type: string; code: string; param?: string | null }) {
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error).toMatchObject({ type: expected.type, code: expected.code });
  if (expected.param !== undefined) expect(body.error.param).toBe(expected.param);
  expect(body.error.message).toMatch(/\S/);
}

const hello = { model: 'test-openai', messages: [{ role: 'user', content: 'hello' }] };

describe('bad input is an OpenAI-style 4xx, and costs nothing', () => {
  it('a missing, malformed, unknown or revoked key is a 401', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const missing = await post(hello);
    expect(missing.status).toBe(401);
    expectOpenAIError(missing.body, { type: 'invalid_request_error', code: 'missing_api_key' });

    for (const key of ['nonsense', 'sk-asq-tooShort', `sk-asq-${'x'.repeat(43)}`]) {
      const res = await post(hello, { authorization: `Bearer ${key}` });
      expect(res.status).toBe(401);
      expectOpenAIError(res.body, { type: 'invalid_request_error', code: 'invalid_api_key' });
      if (key.length > 12) expect(JSON.stringify(res.body)).not.toContain(key.slice(12));
    }

    const newKey = await rotateApiKey(tb.platform.db, tenantId);
    const revoked = await post(hello, { authorization: `Bearer ${apiKey}` });
    expect(revoked.status).toBe(401);
    expect((await post(hello, { authorization: `Bearer ${newKey}` })).status).toBe(200);

    // The SDK surfaces it as its AuthenticationError.
    const error = await tb
      .client('sk-asq-wrong')
      .chat.completions.create({ model: 'test-openai', messages: [{ role: 'user', content: 'hello' }] })
      .catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(error.code).toBe('invalid_api_key');
  });

  it('an unknown or disabled model is a 404 model_not_found', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const auth = { authorization: `Bearer ${apiKey}` };
    const unknown = await post({ ...hello, model: 'gpt-99' }, auth);
    expect(unknown.status).toBe(404);
    expectOpenAIError(unknown.body, { type: 'invalid_request_error', code: 'model_not_found', param: 'model' });
    expect(unknown.body.error.message).toContain('gpt-99');
    const disabled = await post({ ...hello, model: 'test-disabled' }, auth);
    expect(disabled.status).toBe(404);
    expect(disabled.body.error.message).toMatch(/disabled/);
    const error = await tb
      .client(apiKey)
      .chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await tb.ledger(tenantId)).toHaveLength(1); // only the grant
  });

  it('malformed messages are a 400 naming the parameter', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const auth = { authorization: `Bearer ${apiKey}` };
    const cases: [unknown, string | null][] = [
      ['{"model": "test-openai", "messages": [', null],
      ['', null],
      [{ model: 'test-openai' }, 'messages'],
      [{ model: 'test-openai', messages: [] }, 'messages'],
      [{ model: 'test-openai', messages: [{ role: 'wizard', content: 'hi' }] }, 'messages[0].role'],
      [{ model: 'test-openai', messages: [{ role: 'user' }] }, 'messages[0].content'],
      [{ model: 'test-openai', messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
      [{ model: 'test-openai', messages: [{ role: 'assistant' }] }, 'messages[0]'],
      [
        {
          model: 'test-openai',
          messages: [
            { role: 'user', content: 'hi' },
            { role: 'tool', tool_call_id: 'x', content: 'r' },
          ],
        },
        'messages[1].tool_call_id',
      ],
      [{ ...hello, max_tokens: 0 }, 'max_tokens'],
      [{ ...hello, temperature: 3 }, 'temperature'],
      [{ ...hello, n: 2 }, 'n'],
      [{ ...hello, stream_options: { include_usage: true } }, 'stream_options'],
      [{ ...hello, tool_choice: 'required' }, 'tool_choice'],
      [
        {
          ...hello,
          tools: [{ type: 'function', function: { name: 'bad name!' } }],
        },
        'tools[0].function.name',
      ],
      [
        {
          model: 'test-openai',
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] }],
        },
        'messages[0].content[0].image_url.url',
      ],
    ];
    for (const [body, param] of cases) {
      const res = await post(body, auth);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
      expect(res.body.error.param, JSON.stringify(body)).toBe(param);
    }
    // A provider that cannot take a feature says so (before any upstream call, nothing held).
    const anthropic = await post(
      {
        model: 'test-claude',
        messages: [{ role: 'user', content: 'hello' }],
        response_format: { type: 'json_object' },
      },
      auth,
    );
    expect(anthropic.status).toBe(400);
    expectOpenAIError(anthropic.body, {
      type: 'invalid_request_error',
      code: 'unsupported_parameter',
      param: 'response_format',
    });
    const args = await post(
      {
        model: 'test-gemini',
        messages: [
          { role: 'user', content: 'hello' },
          {
            role: 'assistant',
            tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: 'not json' } }],
          },
          { role: 'tool', tool_call_id: 'c1', content: 'done' },
        ],
      },
      auth,
    );
    expect(args.status).toBe(400);
    expect(args.body.error.param).toBe('messages[1].tool_calls[0].function.arguments');
    expect(await tb.balance(tenantId)).toBe(1_000_000n);
    expect(await tb.usageRows(tenantId)).toEqual([]);
  });

  it('an oversized payload is a 413, declared or streamed without a length', async () => {
    const { apiKey } = await tb.tenant(1_000_000n);
    const big = { ...hello, messages: [{ role: 'user', content: 'x'.repeat(30_000) }] };
    const declared = await post(big, { authorization: `Bearer ${apiKey}` });
    expect(declared.status).toBe(413);
    expectOpenAIError(declared.body, { type: 'invalid_request_error', code: 'request_too_large' });

    const encoder = new TextEncoder();
    const text = JSON.stringify(big);
    const chunked = await fetch(`${tb.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < text.length; i += 4096) controller.enqueue(encoder.encode(text.slice(i, i + 4096)));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
  });

  it('a suspended account is a 403, a paused one a 402', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    await tb.store.setTenantStatus(tenantId, 'suspended', 'abuse');
    const suspended = await post(hello, { authorization: `Bearer ${apiKey}` });
    expect(suspended.status).toBe(403);
    expectOpenAIError(suspended.body, { type: 'permission_error', code: 'account_suspended' });
    await tb.store.setTenantStatus(tenantId, 'paused', 'credits exhausted');
    const paused = await post(hello, { authorization: `Bearer ${apiKey}` });
    expect(paused.status).toBe(402);
    expectOpenAIError(paused.body, { type: 'insufficient_quota', code: 'account_paused' });
    await tb.store.setTenantStatus(tenantId, 'active', null);
    expect((await post(hello, { authorization: `Bearer ${apiKey}` })).status).toBe(200);
  });

  it('unknown routes are OpenAI-style 404s', async () => {
    const { apiKey } = await tb.tenant(0n);
    const res = await fetch(`${tb.url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}` },
    });
    expect(res.status).toBe(404);
    expectOpenAIError(await res.json(), { type: 'invalid_request_error', code: 'unknown_url' });
  });
});

describe('response headers', () => {
  it('streams and plain answers carry the request id, the rate limit and the output cap', async () => {
    const { apiKey } = await tb.tenant(1_000_000n);
    for (const stream of [false, true]) {
      const res = await fetch(`${tb.baseURL}/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${apiKey}`,
          'x-request-id': `req-headers-${stream}`,
        },
        body: JSON.stringify({ ...hello, stream }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(stream ? /^text\/event-stream/ : /^application\/json/);
      expect(res.headers.get('x-request-id')).toBe(`req-headers-${stream}`);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('100');
      expect(res.headers.get('x-agentsquads-max-tokens')).toBe('4096');
      await res.text();
    }
  });
});

describe('GET /v1/models', () => {
  it('lists enabled models with prices, labels the demo one, and retrieves one by name', async () => {
    await tb.store.insertModelIfMissing({
      id: 'mdl_demo_for_list_test',
      ...TEST_MODELS[3]!,
      name: 'demo',
      display_name: 'Demo model (offline)',
      demo: true,
    });
    const { apiKey } = await tb.tenant(0n);
    const client = tb.client(apiKey);
    const ids: string[] = [];
    const byId = new Map<string, any>();
    for await (const model of client.models.list()) {
      ids.push(model.id);
      byId.set(model.id, model);
    }
    expect(ids).toEqual(expect.arrayContaining(['test-openai', 'test-claude', 'test-gemini', 'test-compat', 'demo']));
    expect(ids).not.toContain('test-disabled');
    expect(byId.get('test-claude')).toMatchObject({
      object: 'model',
      owned_by: 'anthropic',
      demo: false,
      available: true,
      pricing: { currency: 'USD', input_per_million: '3.90', output_per_million: '19.50' },
    });
    // No demo model server in this testbed: listed, labelled, but not available.
    expect(byId.get('demo')).toMatchObject({ demo: true, label: 'Demo model (offline)', available: false });
    expect((await client.models.retrieve('vendor/model:7b-q4')).id).toBe('vendor/model:7b-q4');
    await expect(client.models.retrieve('test-disabled')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await fetch(`${tb.baseURL}/models`)).status).toBe(401);
  });
});

describe('the models table is read on every request', () => {
  it('a price or markup change bills the next request at the new price; disabling refuses the next one', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const client = tb.client(apiKey);
    const ask = () =>
      client.chat.completions.create({ model: 'vendor/model:7b-q4', messages: [{ role: 'user', content: 'hello' }] });
    await ask();
    await tb.database.db
      .updateTable('models')
      .set({ markup_pct: 35, provider_cost_output_per_m_micros: 20_000_000n })
      .where('name', '=', 'vendor/model:7b-q4')
      .execute();
    await ask();
    const [first, second] = await tb.usageRows(tenantId);
    // 10 in × $3/M + 2 out × $15/M = 60 µ$ (+30 % = 78); then 10 × $3/M + 2 × $20/M = 70 µ$ (+35 % = 94.5 → 95).
    expect([first!.cost_micros + first!.margin_micros, second!.cost_micros + second!.margin_micros]).toEqual([
      78n,
      95n,
    ]);
    expect([second!.cost_micros, second!.margin_micros]).toEqual([70n, 25n]);

    await tb.database.db
      .updateTable('models')
      .set({ enabled: false })
      .where('name', '=', 'vendor/model:7b-q4')
      .execute();
    await expect(ask()).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('rate limit', () => {
  it('refuses the request past the limit with 429 and Retry-After, across replicas sharing the database', async () => {
    const limited = await startProxyTestbed({
      upstreamUrl: mock.url,
      database: tb.database,
      models: [],
      env: { LLM_PROXY_RATE_LIMIT_PER_MINUTE: '4' },
    });
    const replica = await startProxyTestbed({
      upstreamUrl: mock.url,
      database: tb.database,
      models: [],
      env: { LLM_PROXY_RATE_LIMIT_PER_MINUTE: '4' },
    });
    try {
      const { tenantId, apiKey } = await tb.tenant(1_000_000n);
      const other = await tb.tenant(1_000_000n);
      const via = (bed: ProxyTestbed, key: string) =>
        fetch(`${bed.baseURL}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify(hello),
        });
      // Six at once, alternating replicas: exactly four get through.
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => via(i % 2 ? replica : limited, apiKey)));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
      const refused = results.find((r) => r.status === 429)!;
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(120);
      expectOpenAIError(await refused.json(), { type: 'rate_limit_error', code: 'rate_limit_exceeded' });
      expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('4');
      expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      // Another tenant has its own budget; refused calls cost nothing.
      expect((await via(limited, other.apiKey)).status).toBe(200);
      expect(await tb.usageRows(tenantId)).toHaveLength(4);
      // The SDK's own error class, with the header it retries on.
      const error = await limited
        .client(apiKey)
        .chat.completions.create({ model: 'test-openai', messages: [{ role: 'user', content: 'hello' }] })
        .catch((e) => e);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await replica.stop();
      await limited.stop();
    }
  });
});
