import { describe, expect, it } from 'vitest';
import { chatRequestSchema } from '../../../src/llm-proxy/openai-schema.js';
import {
  anthropicStreamItems,
  fromAnthropicMessage,
  toAnthropicBody,
} from '../../../src/llm-proxy/providers/anthropic-translate.js';
import {
  fromGeminiResponse,
  geminiStreamItems,
  geminiToolCallId,
  toGeminiBody,
} from '../../../src/llm-proxy/providers/gemini-translate.js';
import { openAIStreamItems, toOpenAIBody } from '../../../src/llm-proxy/providers/openai-translate.js';
import {
  ProviderError,
  type StreamItem,
  UnsupportedByProvider,
  type UpstreamCall,
} from '../../../src/llm-proxy/providers/types.js';
import { parseSse, type SseEvent } from '../../../src/llm-proxy/sse.js';

const call = (body: Record<string, unknown>, maxTokens = 256): UpstreamCall => ({
  request: chatRequestSchema.parse({ model: 'public-name', ...body }),
  upstreamModel: 'provider-model-id',
  maxTokens,
  id: 'chatcmpl-abcdefghijklmnopqrstuvwx',
  created: 1_700_000_000,
  signal: new AbortController().signal,
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

const conversation = [
  { role: 'system', content: 'Be brief.' },
  { role: 'developer', content: [{ type: 'text', text: 'Use metric units.' }] },
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Weather in Paris? Photo:' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ],
  },
  {
    role: 'assistant',
    content: 'Checking.',
    tool_calls: [
      { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } },
    ],
  },
  { role: 'tool', tool_call_id: 'call_a', content: '{"temperature":21}' },
  { role: 'tool', tool_call_id: 'call_b', content: 'sunny' },
  { role: 'user', content: 'And tomorrow?' },
];

async function* events(list: { event?: string; data: unknown }[]): AsyncGenerator<SseEvent> {
  for (const e of list) yield { event: e.event, data: typeof e.data === 'string' ? e.data : JSON.stringify(e.data) };
}

async function collect(items: AsyncIterable<StreamItem>) {
  const out: StreamItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const deltas = (items: StreamItem[]) =>
  items.flatMap((i) =>
    i.type === 'chunk' ? [{ ...i.chunk.choices[0]!.delta, finish: i.chunk.choices[0]!.finish_reason }] : [],
  );
const lastUsage = (items: StreamItem[]) => items.filter((i) => i.type === 'usage').at(-1);

describe('OpenAI upstream', () => {
  it('forces include_usage on streams, caps the output with the field the client used, and uses the provider id', () => {
    const stream = toOpenAIBody(call({ messages: [{ role: 'user', content: 'hi' }], stream: true }), 'openai', true);
    expect(stream).toMatchObject({
      model: 'provider-model-id',
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 256,
    });
    expect(stream).not.toHaveProperty('max_tokens');
    const compat = toOpenAIBody(call({ messages: [{ role: 'user', content: 'hi' }] }), 'compatible', false);
    expect(compat).toMatchObject({ max_tokens: 256 });
    expect(compat).not.toHaveProperty('stream');
    const named = toOpenAIBody(call({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 999 }), 'openai', false);
    expect(named).toMatchObject({ max_tokens: 256 });
    expect(named).not.toHaveProperty('max_completion_tokens');
  });

  it('separates usage from chunks (a separate usage chunk, or usage on the last choice chunk)', async () => {
    const base = { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm' };
    const items = await collect(
      openAIStreamItems(
        events([
          {
            data: {
              ...base,
              choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }],
            },
          },
          {
            data: {
              ...base,
              choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
              usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
            },
          },
          { data: '[DONE]' },
        ]),
      ),
    );
    expect(items.map((i) => i.type)).toEqual(['chunk', 'usage', 'chunk']);
    expect(lastUsage(items)).toMatchObject({ usage: { inputTokens: 5, outputTokens: 1 } });
    expect(items.every((i) => i.type !== 'chunk' || !('usage' in i.chunk))).toBe(true);
  });

  it('an error object in the stream, or a stream that never finishes, is a provider error', async () => {
    await expect(collect(openAIStreamItems(events([{ data: { error: { message: 'overloaded' } } }])))).rejects.toThrow(
      /overloaded/,
    );
    const base = { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm' };
    await expect(
      collect(
        openAIStreamItems(
          events([{ data: { ...base, choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] } }]),
        ),
      ),
    ).rejects.toBeInstanceOf(ProviderError);
  });
});

describe('Anthropic Messages translation', () => {
  it('request: system, image, tool_use / tool_result blocks, merged turns, tools and tool_choice', () => {
    const body = toAnthropicBody(
      call({
        messages: conversation,
        tools: [weatherTool],
        tool_choice: 'required',
        parallel_tool_calls: false,
        stop: 'END',
        temperature: 0.2,
        user: 'tenant-user-1',
      }),
      true,
    );
    expect(body).toEqual({
      model: 'provider-model-id',
      max_tokens: 256,
      stream: true,
      system: 'Be brief.\n\nUse metric units.',
      temperature: 0.2,
      stop_sequences: ['END'],
      metadata: { user_id: 'tenant-user-1' },
      tools: [
        {
          name: 'get_weather',
          description: 'Weather',
          input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      ],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather in Paris? Photo:' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'call_a', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'call_b', name: 'get_weather', input: { city: 'Lyon' } },
          ],
        },
        {
          // Both results and the next question in one user turn, results first.
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_a', content: '{"temperature":21}' },
            { type: 'tool_result', tool_use_id: 'call_b', content: 'sunny' },
            { type: 'text', text: 'And tomorrow?' },
          ],
        },
      ],
    });
  });

  it('tool_choice variants and https images', () => {
    const choice = (tool_choice: unknown) =>
      toAnthropicBody(call({ messages: [{ role: 'user', content: 'x' }], tools: [weatherTool], tool_choice }), false)
        .tool_choice;
    expect(choice('auto')).toEqual({ type: 'auto' });
    expect(choice('none')).toEqual({ type: 'none' });
    expect(choice({ type: 'function', function: { name: 'get_weather' } })).toEqual({
      type: 'tool',
      name: 'get_weather',
    });
    const url = toAnthropicBody(
      call({
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }],
      }),
      false,
    );
    expect((url.messages as any)[0].content[0]).toEqual({
      type: 'image',
      source: { type: 'url', url: 'https://x.test/a.png' },
    });
  });

  it('refuses what the Messages API cannot do, naming the parameter', () => {
    const refuse = (extra: Record<string, unknown>) => {
      try {
        toAnthropicBody(call({ messages: [{ role: 'user', content: 'x' }], ...extra }), false);
      } catch (err) {
        return (err as UnsupportedByProvider).param;
      }
      return 'accepted';
    };
    expect(refuse({ response_format: { type: 'json_object' } })).toBe('response_format');
    expect(refuse({ temperature: 1.5 })).toBe('temperature');
    expect(refuse({ logprobs: true })).toBe('logprobs');
    expect(refuse({ presence_penalty: 0.5 })).toBe('presence_penalty');
    expect(refuse({ presence_penalty: 0 })).toBe('accepted');
    expect(refuse({ response_format: { type: 'text' } })).toBe('accepted');
    expect(() =>
      toAnthropicBody(
        call({
          messages: [
            { role: 'user', content: 'x' },
            {
              role: 'assistant',
              tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '[1]' } }],
            },
          ],
        }),
        false,
      ),
    ).toThrow(/messages\[1\]\.tool_calls\[0\]\.function\.arguments/);
  });

  it('response: text and tool_use blocks, stop reason, usage with cache reads', () => {
    const { body, usage } = fromAnthropicMessage(
      {
        type: 'message',
        content: [
          { type: 'text', text: 'Let me check. ' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
        ],
        stop_reason: 'tool_use',
        usage: { input_tokens: 100, cache_read_input_tokens: 20, cache_creation_input_tokens: 5, output_tokens: 30 },
      },
      call({ messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(body.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: 'Let me check. ',
        tool_calls: [
          { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        ],
        refusal: null,
      },
      finish_reason: 'tool_calls',
      logprobs: null,
    });
    expect(usage).toMatchObject({ inputTokens: 125, outputTokens: 30 });
    expect(body.usage).toEqual({ prompt_tokens: 125, completion_tokens: 30, total_tokens: 155 });
    const stop = (stop_reason: string) =>
      fromAnthropicMessage({ content: [], stop_reason }, call({ messages: [{ role: 'user', content: 'x' }] })).body
        .choices[0]!.finish_reason;
    expect([stop('end_turn'), stop('stop_sequence'), stop('max_tokens'), stop('refusal')]).toEqual([
      'stop',
      'stop',
      'length',
      'content_filter',
    ]);
  });

  it('stream: events become OpenAI deltas, and the final usage is message_delta’s cumulative count', async () => {
    const items = await collect(
      anthropicStreamItems(
        events([
          { data: { type: 'message_start', message: { usage: { input_tokens: 25, output_tokens: 1 } } } },
          { data: { type: 'ping' } },
          { data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
          { data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Sure' } } },
          { data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ', one sec.' } } },
          { data: { type: 'content_block_stop', index: 0 } },
          {
            data: {
              type: 'content_block_start',
              index: 1,
              content_block: { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: {} },
            },
          },
          { data: { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } } },
          {
            data: {
              type: 'content_block_delta',
              index: 1,
              delta: { type: 'input_json_delta', partial_json: '{"city":' },
            },
          },
          {
            data: {
              type: 'content_block_delta',
              index: 1,
              delta: { type: 'input_json_delta', partial_json: '"Paris"}' },
            },
          },
          { data: { type: 'content_block_stop', index: 1 } },
          {
            data: {
              type: 'content_block_start',
              index: 2,
              content_block: { type: 'tool_use', id: 'toolu_10', name: 'now' },
            },
          },
          { data: { type: 'content_block_stop', index: 2 } },
          { data: { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 42 } } },
          { data: { type: 'message_stop' } },
        ]),
        call({ messages: [{ role: 'user', content: 'x' }] }),
      ),
    );
    expect(deltas(items)).toEqual([
      { role: 'assistant', content: '', finish: null },
      { content: 'Sure', finish: null },
      { content: ', one sec.', finish: null },
      {
        tool_calls: [{ index: 0, id: 'toolu_9', type: 'function', function: { name: 'get_weather', arguments: '' } }],
        finish: null,
      },
      { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }], finish: null },
      { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }], finish: null },
      {
        tool_calls: [{ index: 1, id: 'toolu_10', type: 'function', function: { name: 'now', arguments: '' } }],
        finish: null,
      },
      // A tool called without arguments still gets a JSON text.
      { tool_calls: [{ index: 1, function: { arguments: '{}' } }], finish: null },
      { finish: 'tool_calls' },
    ]);
    expect(lastUsage(items)).toMatchObject({ usage: { inputTokens: 25, outputTokens: 42 } });
  });

  it('stream: an error event (overloaded) and a stream cut before message_stop are provider errors', async () => {
    const overloaded = await collect(
      anthropicStreamItems(
        events([
          { data: { type: 'message_start', message: { usage: { input_tokens: 1, output_tokens: 1 } } } },
          { data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } },
        ]),
        call({ messages: [{ role: 'user', content: 'x' }] }),
      ),
    ).catch((e) => e);
    expect(overloaded).toBeInstanceOf(ProviderError);
    expect(overloaded).toMatchObject({ status: 529, providerMessage: 'Overloaded' });
    const cut = await collect(
      anthropicStreamItems(
        events([{ data: { type: 'message_start', message: { usage: { input_tokens: 1, output_tokens: 1 } } } }]),
        call({ messages: [{ role: 'user', content: 'x' }] }),
      ),
    ).catch((e) => e);
    expect(cut).toBeInstanceOf(ProviderError);
  });
});

describe('Gemini generateContent translation', () => {
  it('request: systemInstruction, roles, inlineData, functionCall / functionResponse by name, config', () => {
    const body = toGeminiBody(
      call({
        messages: conversation,
        tools: [weatherTool],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        temperature: 1.4,
        top_p: 0.9,
        stop: ['END', 'STOP'],
        seed: 7,
        response_format: { type: 'json_schema', json_schema: { name: 'w', schema: { type: 'object' } } },
      }),
    );
    expect(body).toEqual({
      systemInstruction: { parts: [{ text: 'Be brief.\n\nUse metric units.' }] },
      contents: [
        {
          role: 'user',
          parts: [
            { text: 'Weather in Paris? Photo:' },
            { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'model',
          parts: [
            { text: 'Checking.' },
            { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
            { functionCall: { name: 'get_weather', args: { city: 'Lyon' } } },
          ],
        },
        {
          role: 'user',
          parts: [
            { functionResponse: { name: 'get_weather', response: { temperature: 21 } } },
            { functionResponse: { name: 'get_weather', response: { content: 'sunny' } } },
            { text: 'And tomorrow?' },
          ],
        },
      ],
      tools: [
        {
          functionDeclarations: [
            { name: 'get_weather', description: 'Weather', parametersJsonSchema: weatherTool.function.parameters },
          ],
        },
      ],
      toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } },
      generationConfig: {
        maxOutputTokens: 256,
        temperature: 1.4,
        topP: 0.9,
        stopSequences: ['END', 'STOP'],
        seed: 7,
        responseMimeType: 'application/json',
        responseJsonSchema: { type: 'object' },
      },
    });
  });

  it('refuses images by URL (Gemini takes inline data) and OpenAI-only options', () => {
    expect(() =>
      toGeminiBody(
        call({
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }],
        }),
      ),
    ).toThrow(UnsupportedByProvider);
    expect(() => toGeminiBody(call({ messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'high' }))).toThrow(
      /reasoning_effort/,
    );
  });

  it('response: text without thoughts, function calls with ids, finish reason, usage incl. thinking', () => {
    const c = call({ messages: [{ role: 'user', content: 'x' }] });
    const { body, usage } = fromGeminiResponse(
      {
        candidates: [
          {
            content: {
              role: 'model',
              parts: [
                { text: 'thinking…', thought: true },
                { text: 'Calling.' },
                { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
                { functionCall: { id: 'fc_given', name: 'get_weather', args: { city: 'Lyon' } } },
              ],
            },
            finishReason: 'STOP',
          },
        ],
        usageMetadata: { promptTokenCount: 40, candidatesTokenCount: 12, thoughtsTokenCount: 8, totalTokenCount: 60 },
      },
      c,
    );
    expect(body.choices[0]?.message).toEqual({
      role: 'assistant',
      content: 'Calling.',
      tool_calls: [
        {
          id: geminiToolCallId(c.id, 0),
          type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
        },
        { id: 'fc_given', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } },
      ],
      refusal: null,
    });
    expect(body.choices[0]?.finish_reason).toBe('tool_calls');
    expect(usage).toMatchObject({ inputTokens: 40, outputTokens: 20 });
    const blocked = fromGeminiResponse(
      { promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: 9 } },
      c,
    );
    expect(blocked.body.choices[0]?.finish_reason).toBe('content_filter');
    expect(blocked.usage).toMatchObject({ inputTokens: 9, outputTokens: 0 });
  });

  it('stream: whole parts per event, cumulative usage, one finish', async () => {
    const c = call({ messages: [{ role: 'user', content: 'x' }] });
    const items = await collect(
      geminiStreamItems(
        events([
          {
            data: {
              candidates: [{ content: { role: 'model', parts: [{ text: 'Hel' }] } }],
              usageMetadata: { promptTokenCount: 7 },
            },
          },
          { data: { candidates: [{ content: { role: 'model', parts: [{ text: 'lo' }] } }] } },
          {
            data: {
              candidates: [
                {
                  content: { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: {} } }] },
                  finishReason: 'STOP',
                },
              ],
              usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 5 },
            },
          },
        ]),
        c,
      ),
    );
    expect(deltas(items)).toEqual([
      { role: 'assistant', content: '', finish: null },
      { content: 'Hel', finish: null },
      { content: 'lo', finish: null },
      {
        tool_calls: [
          {
            index: 0,
            id: geminiToolCallId(c.id, 0),
            type: 'function',
            function: { name: 'get_weather', arguments: '{}' },
          },
        ],
        finish: null,
      },
      { finish: 'tool_calls' },
    ]);
    expect(lastUsage(items)).toMatchObject({ usage: { inputTokens: 7, outputTokens: 5 } });
    await expect(
      collect(geminiStreamItems(events([{ data: { candidates: [{ content: { parts: [{ text: 'a' }] } }] } }]), c)),
    ).rejects.toBeInstanceOf(ProviderError);
  });
});

describe('SSE parsing', () => {
  const bytes = async function* (parts: (string | Uint8Array)[]) {
    for (const p of parts) yield typeof p === 'string' ? new TextEncoder().encode(p) : p;
  };
  const parse = async (parts: (string | Uint8Array)[]) => {
    const out: SseEvent[] = [];
    for await (const e of parseSse(bytes(parts))) out.push(e);
    return out;
  };

  it('handles LF, CRLF and CR line ends, split anywhere, comments, event names and multi-line data', async () => {
    expect(
      await parse([
        ': keep-alive\n\nevent: message_start\ndata: {"a":',
        '1}\r',
        '\n\r\ndata: line one\rdata: line two\r\rdata:no-space\n\n',
      ]),
    ).toEqual([
      { event: 'message_start', data: '{"a":1}' },
      { event: undefined, data: 'line one\nline two' },
      { event: undefined, data: 'no-space' },
    ]);
  });

  it('keeps multi-byte characters split across reads, and dispatches a last event without its blank line', async () => {
    const wave = new TextEncoder().encode('data: 👋 hi\n\ndata: last');
    expect(await parse([wave.slice(0, 8), wave.slice(8)])).toEqual([
      { event: undefined, data: '👋 hi' },
      { event: undefined, data: 'last' },
    ]);
  });
});
