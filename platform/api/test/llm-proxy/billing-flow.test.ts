import { createServer } from 'node:net';
import { freePort, waitFor } from '@agentstack/core';
import type { LLMock } from '@copilotkit/aimock';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { priceCall } from '../../src/llm-proxy/billing.js';
import { typicalInputTokens, typicalTokens } from '../../src/llm-proxy/estimate.js';
import { chatRequestSchema } from '../../src/llm-proxy/openai-schema.js';
import { type ProxyTestbed, startAimock, startProxyTestbed, TEST_MODELS, usageFor } from '../support/proxy.js';

let mock: LLMock;
let tb: ProxyTestbed;

const PRICE = { inputPerMillionMicros: 3_000_000n, outputPerMillionMicros: 15_000_000n, markupPct: 30 };
const LONG_ANSWER = 'The quick brown fox jumps over the lazy dog, again and again, until the stream is done.';

beforeAll(async () => {
  mock = await startAimock({ chunkSize: 3 });
  // A provider that honours max_tokens: it reports as many output tokens as it was allowed.
  mock.on({ userMessage: 'spend' }, (req) => ({
    content: 'Spent.',
    usage: usageFor(10, Math.min(4_000, (req as { max_tokens?: number }).max_tokens ?? 4_000)),
  }));
  mock.on({ userMessage: 'slow story' }, { content: LONG_ANSWER, usage: usageFor(12, 40) }, { latency: 40 });
  mock.on(
    { userMessage: 'endless story' },
    { content: LONG_ANSWER.repeat(3), usage: usageFor(12, 120) },
    { latency: 150 },
  );
  mock.on(
    { userMessage: 'server error' },
    { error: { message: 'upstream exploded', type: 'server_error' }, status: 500 },
  );
  mock.on({ userMessage: 'too many' }, { error: { message: 'slow down', type: 'rate_limit_error' }, status: 429 });
  mock.on(
    { userMessage: 'broken stream' },
    { content: LONG_ANSWER, usage: usageFor(12, 40) },
    { truncateAfterChunks: 4, latency: 20 },
  );
  mock.on({ userMessage: 'stalled' }, { content: LONG_ANSWER, usage: usageFor(12, 40) }, { latency: 3_000 });
  mock.on({ userMessage: 'hello' }, { content: 'Hi!', usage: usageFor(10, 2) });
  tb = await startProxyTestbed({
    upstreamUrl: mock.url,
    // A model whose largest call costs about 0.2 cents, so a small balance covers a couple of dozen.
    models: [...TEST_MODELS, { ...TEST_MODELS[3]!, name: 'test-small', max_output_tokens: 100 }],
    env: {
      LLM_PROXY_RATE_LIMIT_PER_MINUTE: '100000',
      LLM_PROXY_DRAIN_TIMEOUT_SECONDS: '10',
      LLM_PROXY_STREAM_IDLE_TIMEOUT_SECONDS: '1',
    },
  });
});
afterAll(async () => {
  await tb?.stop();
  await mock?.stop();
});

const charge = (input: number, output: number) => priceCall(PRICE, input, output).chargeMicros;

describe('no overdraft beyond one request', () => {
  it('200 concurrent requests against a small balance: never below zero, 402 afterwards, a credit revives it', async () => {
    const credit = 50_000n; // five cents: about 25 calls of this model at its full output allowance
    const { tenantId, apiKey } = await tb.tenant(credit);
    const client = tb.client(apiKey);
    const spend = () =>
      client.chat.completions.create({ model: 'test-small', messages: [{ role: 'user', content: 'spend' }] });
    // The most one request can hold: its input bound plus the model's whole output allowance.
    const maxHold = charge(200, 100);

    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        spend().then(
          (r) => ({ ok: true as const, out: r.usage!.completion_tokens }),
          (e) => ({ ok: false as const, e }),
        ),
      ),
    );
    const ok = results.filter((r) => r.ok);
    const refused = results.flatMap((r) => (r.ok ? [] : [r.e]));
    expect(ok.length).toBeGreaterThan(10);
    expect(ok.length).toBeLessThanOrEqual(Number(credit / charge(10, 16)));
    expect(refused.length).toBeGreaterThan(100);
    for (const e of refused) {
      expect(e).toBeInstanceOf(OpenAI.APIError);
      expect(e.status).toBe(402);
      expect(e.code).toBe('insufficient_credits');
      expect(e.type).toBe('insufficient_quota');
      expect(e.message).toMatch(/Credits exhausted/);
    }

    // Whatever is left buys at most a few calls with a smaller output cap; then every request is a 402.
    let last: unknown;
    for (let i = 0; i < 10; i++) {
      last = await spend().catch((e) => e);
      if (last instanceof OpenAI.APIError) break;
    }
    expect(last).toBeInstanceOf(OpenAI.APIError);
    expect((last as InstanceType<typeof OpenAI.APIError>).status).toBe(402);
    const balance = await tb.balance(tenantId);
    expect(balance).toBeLessThan(charge(30, 16));
    expect((await spend().catch((e) => e)).status).toBe(402);

    // Every balance the ledger ever recorded, in order: never below minus one request's largest hold (in fact
    // never below zero: every hold covered its call).
    const ledger = await tb.ledger(tenantId);
    let lowest = credit;
    for (const entry of ledger) if (entry.balance_after_micros < lowest) lowest = entry.balance_after_micros;
    expect(lowest).toBeGreaterThanOrEqual(-maxHold);
    expect(lowest).toBeGreaterThanOrEqual(0n);
    // Money adds up: what was credited = what was billed + what is left; every hold was released.
    const rows = await tb.usageRows(tenantId);
    const billed = rows.reduce((sum, r) => sum + r.cost_micros + r.margin_micros, 0n);
    expect(credit - billed).toBe(balance);
    const holds = ledger.filter((e) => e.kind === 'reservation').reduce((s, e) => s + e.amount_micros, 0n);
    const releases = ledger.filter((e) => e.kind === 'reservation_release').reduce((s, e) => s + e.amount_micros, 0n);
    expect(holds + releases).toBe(0n);
    // Each call was billed by the formula for the tokens the provider reported.
    for (const row of rows)
      expect(row.cost_micros + row.margin_micros).toBe(charge(row.input_tokens, row.output_tokens));

    // A ledger credit makes requests work again, with the full output allowance.
    await tb.grant(tenantId, 1_000_000n);
    expect((await spend()).usage?.completion_tokens).toBe(100);
  }, 120_000);

  it('caps max_tokens to what the balance affords, and says so', async () => {
    const { apiKey } = await tb.tenant(1_000n);
    const res = await fetch(`${tb.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ model: 'test-compat', messages: [{ role: 'user', content: 'spend' }], max_tokens: 4_000 }),
    });
    expect(res.status).toBe(200);
    const capped = Number(res.headers.get('x-agentsquads-max-tokens'));
    expect(res.headers.get('x-agentsquads-max-tokens-capped')).toBe('true');
    expect(capped).toBeGreaterThan(16);
    expect(capped).toBeLessThan(4_000);
    const body = (await res.json()) as OpenAI.Chat.Completions.ChatCompletion;
    expect(body.usage?.completion_tokens).toBe(capped); // the provider was told the cap
  });

  it('402 when the balance cannot cover a minimal request, with how much it needs', async () => {
    const { tenantId, apiKey } = await tb.tenant(50n);
    const res = await fetch(`${tb.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ model: 'test-openai', messages: [{ role: 'user', content: 'hello' }] }),
    });
    expect(res.status).toBe(402);
    expect(res.headers.get('x-should-retry')).toBe('false');
    const body = (await res.json()) as { error: { message: string; code: string } };
    expect(body.error.code).toBe('insufficient_credits');
    expect(body.error.message).toContain('$0.00005'); // the balance
    expect(body.error.message).toMatch(/needs \$0\.\d+/);
    expect(await tb.ledger(tenantId)).toHaveLength(1);
  });
});

describe('a client that disconnects mid-stream is still charged for what the provider produced', () => {
  it('the proxy reads the rest of the stream and bills the provider-reported usage', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const controller = new AbortController();
    const stream = await tb
      .client(apiKey)
      .chat.completions.create(
        { model: 'test-openai', messages: [{ role: 'user', content: 'slow story' }], stream: true },
        { signal: controller.signal },
      );
    let received = '';
    // The SDK ends the iteration quietly when its request is aborted.
    for await (const chunk of stream) {
      received += chunk.choices[0]?.delta.content ?? '';
      if (received.length >= 6) controller.abort();
    }
    expect(received.length).toBeLessThan(LONG_ANSWER.length);
    await waitFor(async () => (await tb.usageRows(tenantId)).length === 1, { timeoutMs: 15_000, what: 'the bill' });
    const [row] = await tb.usageRows(tenantId);
    expect(row).toMatchObject({
      input_tokens: 12,
      output_tokens: 40,
      usage_source: 'provider',
      outcome: 'client_disconnected',
    });
    expect(await tb.balance(tenantId)).toBe(1_000_000n - charge(12, 40));
  });

  it('past the drain timeout the proxy stops the provider and bills an estimate of the partial output', async () => {
    const short = await startProxyTestbed({
      upstreamUrl: mock.url,
      database: tb.database,
      models: [],
      env: { LLM_PROXY_DRAIN_TIMEOUT_SECONDS: '0.3' },
    });
    try {
      const { tenantId, apiKey } = await tb.tenant(1_000_000n);
      const controller = new AbortController();
      const request = {
        model: 'test-openai',
        messages: [{ role: 'user' as const, content: 'endless story' }],
        stream: true as const,
      };
      const stream = await short.client(apiKey).chat.completions.create(request, { signal: controller.signal });
      let received = '';
      for await (const chunk of stream) {
        received += chunk.choices[0]?.delta.content ?? '';
        if (received.length >= 3) controller.abort();
      }
      await waitFor(async () => (await tb.usageRows(tenantId)).length === 1, { timeoutMs: 15_000, what: 'the bill' });
      const [row] = await tb.usageRows(tenantId);
      expect(row).toMatchObject({ usage_source: 'estimated', outcome: 'aborted' });
      // Input: the typical count of this request; output: the typical count of what the provider had sent —
      // more than the client saw (the proxy kept reading for 0.3 s), far less than the whole answer.
      expect(row!.input_tokens).toBe(typicalInputTokens(chatRequestSchema.parse(request)));
      expect(row!.output_tokens).toBeGreaterThanOrEqual(typicalTokens(received));
      expect(row!.output_tokens).toBeLessThan(typicalTokens(LONG_ANSWER.repeat(3)));
      expect(row!.cost_micros + row!.margin_micros).toBe(charge(row!.input_tokens, row!.output_tokens));
      expect(await tb.balance(tenantId)).toBe(1_000_000n - charge(row!.input_tokens, row!.output_tokens));
      const ledger = await tb.ledger(tenantId);
      expect(ledger.filter((e) => e.kind === 'reservation_release')).toHaveLength(1);
    } finally {
      await short.stop();
    }
  });
});

describe('a provider error costs nothing', () => {
  async function expectNothingBilled(tenantId: string, credit: bigint) {
    expect(await tb.usageRows(tenantId)).toEqual([]);
    expect(await tb.balance(tenantId)).toBe(credit);
    const ledger = await tb.ledger(tenantId);
    expect(ledger.map((e) => e.kind)).toEqual(['admin_grant', 'reservation', 'reservation_release']);
  }

  it.each([
    ['server error', false, 502, 'provider_error'],
    ['server error', true, 502, 'provider_error'],
    ['too many', false, 429, 'provider_rate_limited'],
    ['too many', true, 429, 'provider_rate_limited'],
  ])('"%s" (stream: %s) → %i %s, hold released', async (message, stream, status, code) => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const error = await tb
      .client(apiKey)
      .chat.completions.create({ model: 'test-claude', messages: [{ role: 'user', content: message }], stream })
      .then(async (r) => {
        if (stream) for await (const _ of r as AsyncIterable<unknown>) void _;
      })
      .catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(status);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(/not charged/);
    await expectNothingBilled(tenantId, 1_000_000n);
  });

  it('a stream that breaks off mid-answer ends with an error event, and is not billed', async () => {
    for (const model of ['test-openai', 'test-claude', 'test-gemini']) {
      const { tenantId, apiKey } = await tb.tenant(1_000_000n);
      const stream = await tb
        .client(apiKey)
        .chat.completions.create({ model, messages: [{ role: 'user', content: 'broken stream' }], stream: true });
      let text = '';
      const error = await (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      })().catch((e) => e);
      expect(error, model).toBeInstanceOf(OpenAI.APIError);
      expect(error.code, model).toBe('provider_error');
      expect(text.length).toBeLessThan(LONG_ANSWER.length);
      await expectNothingBilled(tenantId, 1_000_000n);
    }
  });

  it('a provider that goes silent mid-stream times out and is not billed', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const stream = await tb.client(apiKey).chat.completions.create({
      model: 'test-openai',
      messages: [{ role: 'user', content: 'stalled' }],
      stream: true,
    });
    const error = await (async () => {
      for await (const _ of stream) void _;
    })().catch((e) => e);
    expect(error.code).toBe('provider_timeout');
    await expectNothingBilled(tenantId, 1_000_000n);
  });

  it('an unreachable provider, or one refusing our key, is a 502 that costs nothing', async () => {
    const closedPort = await freePort();
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(closedPort, '127.0.0.1', () => probe.close(() => r())));
    const broken = await startProxyTestbed({
      upstreamUrl: mock.url,
      database: tb.database,
      models: [],
      env: { OPENAI_BASE_URL: `http://127.0.0.1:${closedPort}/v1`, ANTHROPIC_API_KEY: 'sk-ant-wrong' },
    });
    try {
      const { tenantId, apiKey } = await tb.tenant(1_000_000n);
      const unreachable = await broken
        .client(apiKey)
        .chat.completions.create({ model: 'test-openai', messages: [{ role: 'user', content: 'hello' }] })
        .catch((e) => e);
      expect(unreachable.status).toBe(502);
      expect(unreachable.code).toBe('provider_unreachable');
      const refused = await broken
        .client(apiKey)
        .chat.completions.create({ model: 'test-claude', messages: [{ role: 'user', content: 'hello' }] })
        .catch((e) => e);
      expect(refused.status).toBe(502);
      expect(refused.code).toBe('provider_auth_failed');
      expect(refused.message).not.toContain('sk-ant-wrong');
      expect(await tb.usageRows(tenantId)).toEqual([]);
      expect(await tb.balance(tenantId)).toBe(1_000_000n);
    } finally {
      await broken.stop();
    }
  });
});
