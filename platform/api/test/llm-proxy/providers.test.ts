import Anthropic from '@anthropic-ai/sdk';
import type { LLMock } from '@copilotkit/aimock';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROVIDER_KEYS, type ProxyTestbed, startAimock, startProxyTestbed, usageFor } from '../support/proxy.js';

let mock: LLMock;
let tb: ProxyTestbed;

const WEATHER_TOOL: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

beforeAll(async () => {
  mock = await startAimock({ chunkSize: 5 });
  // Tool results first (first match wins): the conversation still contains the user's "weather" message.
  mock.on(
    { userMessage: 'weather', hasToolResult: true },
    { content: 'It is sunny in Paris.', usage: usageFor(150, 8) },
  );
  mock.on(
    { userMessage: 'weather' },
    {
      content: 'Let me look that up.',
      toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
      usage: usageFor(120, 20),
    },
  );
  mock.on({ userMessage: 'hello' }, { content: 'Hello! How can I help you today?', usage: usageFor(42, 9) });
  tb = await startProxyTestbed({ upstreamUrl: mock.url });
});
afterAll(async () => {
  await tb?.stop();
  await mock?.stop();
});

/** The bill by the formula, computed here independently: $3/M in, $15/M out, 30 % markup. */
function expected(input: number, output: number) {
  const scaled = BigInt(input) * 3_000_000n + BigInt(output) * 15_000_000n;
  const ceil = (n: bigint, d: bigint) => (n + d - 1n) / d;
  const charge = ceil(scaled * 130n, 100_000_000n);
  const cost = ceil(scaled, 1_000_000n);
  return { charge, cost, margin: charge - cost };
}

/** The tenant paid exactly for these calls: one usage row and one usage debit each, holds released. */
async function expectBilled(tenantId: string, credit: bigint, calls: [number, number][]) {
  const rows = await tb.usageRows(tenantId);
  expect(rows.map((r) => [r.input_tokens, r.output_tokens])).toEqual(calls);
  let total = 0n;
  for (const [i, row] of rows.entries()) {
    const bill = expected(...calls[i]!);
    expect(row).toMatchObject({ cost_micros: bill.cost, margin_micros: bill.margin, usage_source: 'provider' });
    total += bill.charge;
  }
  const ledger = await tb.ledger(tenantId);
  const usage = ledger.filter((e) => e.kind === 'usage');
  expect(usage.map((e) => e.reference)).toEqual(rows.map((r) => r.id));
  expect(usage.map((e) => -(e.amount_micros as bigint))).toEqual(calls.map((c) => expected(...c).charge));
  const holds = ledger.filter((e) => e.kind === 'reservation');
  const releases = ledger.filter((e) => e.kind === 'reservation_release');
  expect(holds).toHaveLength(calls.length);
  expect(releases.map((e) => [e.reference, e.amount_micros])).toEqual(
    holds.map((e) => [e.reference, -(e.amount_micros as bigint)]),
  );
  expect(await tb.balance(tenantId)).toBe(credit - total);
}

const MODELS = [
  ['OpenAI', 'test-openai'],
  ['Anthropic', 'test-claude'],
  ['Gemini', 'test-gemini'],
  ['OpenAI-compatible (Ollama)', 'test-compat'],
] as const;

describe.each(MODELS)('%s through the proxy, with the official openai SDK', (_name, model) => {
  it('answers a non-streaming request and bills the provider-reported tokens to the micro-dollar', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const client = tb.client(apiKey);
    const completion = await client.chat.completions.create({
      model,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'hello there' },
      ],
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(model);
    expect(completion.choices[0]?.message.content).toBe('Hello! How can I help you today?');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage).toMatchObject({ prompt_tokens: 42, completion_tokens: 9, total_tokens: 51 });
    await expectBilled(tenantId, 1_000_000n, [[42, 9]]);
  });

  it('streams text; the usage chunk reaches only clients that asked for it, billing is the same', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const client = tb.client(apiKey);

    const withUsage = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: string[] = [];
    const usages: unknown[] = [];
    let finish: string | null = null;
    for await (const chunk of withUsage) {
      expect(chunk.model).toBe(model);
      if (chunk.usage) usages.push(chunk.usage);
      const choice = chunk.choices[0];
      if (choice?.delta.content) deltas.push(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    expect(deltas.length).toBeGreaterThan(3); // really streamed, in pieces
    expect(deltas.join('')).toBe('Hello! How can I help you today?');
    expect(finish).toBe('stop');
    expect(usages).toEqual([{ prompt_tokens: 42, completion_tokens: 9, total_tokens: 51 }]);

    const withoutUsage = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
    });
    let sawUsage = false;
    let text = '';
    for await (const chunk of withoutUsage) {
      if (chunk.usage || chunk.choices.length === 0) sawUsage = true;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(sawUsage).toBe(false);
    expect(text).toBe('Hello! How can I help you today?');
    await expectBilled(tenantId, 1_000_000n, [
      [42, 9],
      [42, 9],
    ]);
  });

  it('runs a tool-calling round trip, streaming and not, and bills every call', async () => {
    const { tenantId, apiKey } = await tb.tenant(1_000_000n);
    const client = tb.client(apiKey);
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: 'user', content: "What's the weather in Paris?" },
    ];

    // 1. Streaming: the tool call arrives as deltas, assembled by the SDK's stream helper.
    const runner = client.chat.completions.stream({ model, messages, tools: [WEATHER_TOOL], tool_choice: 'auto' });
    const first = await runner.finalChatCompletion();
    const call = first.choices[0]?.message.tool_calls?.[0];
    expect(first.choices[0]?.finish_reason).toBe('tool_calls');
    expect(first.choices[0]?.message.content).toBe('Let me look that up.');
    expect(call?.type).toBe('function');
    expect(call && 'function' in call ? call.function.name : undefined).toBe('get_weather');
    expect(call && 'function' in call ? JSON.parse(call.function.arguments) : undefined).toEqual({ city: 'Paris' });
    expect(call?.id).toMatch(/\S/);

    // 2. Non-streaming with the tool result: the provider sees the call and its result.
    messages.push(first.choices[0]!.message as OpenAI.Chat.Completions.ChatCompletionMessageParam, {
      role: 'tool',
      tool_call_id: call!.id,
      content: JSON.stringify({ temperature: 21, sky: 'clear' }),
    });
    const second = await client.chat.completions.create({ model, messages, tools: [WEATHER_TOOL] });
    expect(second.choices[0]?.message.content).toBe('It is sunny in Paris.');
    expect(second.choices[0]?.finish_reason).toBe('stop');

    // 3. Non-streaming tool call.
    const third = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'weather in Paris please' }],
      tools: [WEATHER_TOOL],
      tool_choice: 'required',
    });
    const nonStreamCall = third.choices[0]?.message.tool_calls?.[0];
    expect(third.choices[0]?.finish_reason).toBe('tool_calls');
    expect(nonStreamCall && 'function' in nonStreamCall ? JSON.parse(nonStreamCall.function.arguments) : null).toEqual({
      city: 'Paris',
    });
    await expectBilled(tenantId, 1_000_000n, [
      [120, 20],
      [150, 8],
      [120, 20],
    ]);
  });
});

describe('what the providers received', () => {
  it('each provider gets its own key (never the tenant key), the system prompt, the tool call and its result', async () => {
    // Matches only when the provider's request carried the system prompt and the tool result through.
    mock.prependFixture({
      match: { userMessage: 'forecast', systemMessage: 'Be brief.', hasToolResult: true },
      response: { content: 'Sunny, 21 °C.', usage: usageFor(60, 5) },
    });
    const { apiKey } = await tb.tenant(1_000_000n);
    const client = tb.client(apiKey);
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'forecast for Paris?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature":21}' },
    ];
    const paths: Record<string, string> = {
      'test-openai': '/v1/chat/completions',
      'test-claude': '/v1/messages',
      'test-gemini': '/v1beta/models/gemini-test:generateContent',
      'test-compat': '/v1/chat/completions',
    };
    for (const [model, path] of Object.entries(paths)) {
      mock.clearRequests();
      const answer = await client.chat.completions.create({ model, messages, tools: [WEATHER_TOOL], max_tokens: 100 });
      expect(answer.choices[0]?.message.content, model).toBe('Sunny, 21 °C.');
      const seen = mock.getLastRequest();
      expect(seen?.path).toBe(path);
      expect(seen?.response.status).toBe(200); // aimock accepted the provider key (it refuses any other)
    }
  });

  it('the official Anthropic SDK reading the same fixture directly agrees with what the proxy translated', async () => {
    const anthropic = new Anthropic({ apiKey: PROVIDER_KEYS.anthropic, baseURL: mock.url, maxRetries: 0 });
    const direct = await anthropic.messages.create({
      model: 'claude-test',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'weather in Paris' }],
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    });
    const text = direct.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
    const toolUse = direct.content.find((b) => b.type === 'tool_use');

    const { apiKey } = await tb.tenant(1_000_000n);
    const proxied = await tb.client(apiKey).chat.completions.create({
      model: 'test-claude',
      messages: [{ role: 'user', content: 'weather in Paris' }],
      tools: [WEATHER_TOOL],
    });
    const message = proxied.choices[0]!.message;
    expect(message.content).toBe(text);
    const call = message.tool_calls?.[0];
    expect(call && 'function' in call ? call.function.name : undefined).toBe(
      toolUse?.type === 'tool_use' ? toolUse.name : '',
    );
    expect(call && 'function' in call ? JSON.parse(call.function.arguments) : undefined).toEqual(
      toolUse?.type === 'tool_use' ? toolUse.input : undefined,
    );
    expect(call?.id).toMatch(/^toolu_/);
    expect(proxied.usage?.prompt_tokens).toBe(direct.usage.input_tokens);
    expect(proxied.usage?.completion_tokens).toBe(direct.usage.output_tokens);
    expect(proxied.choices[0]?.finish_reason).toBe(direct.stop_reason === 'tool_use' ? 'tool_calls' : 'stop');
  });
});
