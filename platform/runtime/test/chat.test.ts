import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatEvent, ChatEventOf } from '../src/events.js';
import {
  chat,
  type LlmRequest,
  lastUserText,
  shape,
  startLlm,
  startRuntime,
  TENANT_KEY,
  type TestRuntime,
  textOf,
} from './helpers.js';

const SCRIPT = `#!/usr/bin/env bash
# prints the first ten Fibonacci numbers
a=0; b=1
for i in $(seq 1 10); do
  printf '%s ' "$a"
  t=$((a + b)); a=$b; b=$t
done
echo
`;
const FINAL =
  'The first ten Fibonacci numbers are 0 1 1 2 3 5 8 13 21 34; the script is scripts/fib.sh and its output is in out/fib.txt.';

let llm: Awaited<ReturnType<typeof startLlm>>;
let runtime: TestRuntime;

beforeAll(async () => {
  // Like the LLM proxy, the upstream accepts only the tenant's key.
  llm = await startLlm({ apiKeys: [TENANT_KEY] });
  // The model's side of the task, scripted: write the script, run it, read its output, answer.
  llm.on(
    {
      predicate: (req) => lastUserText(req as LlmRequest).includes('Fibonacci') && req.messages.at(-1)?.role === 'user',
    },
    {
      content: "I'll write a small script, run it and check its output.",
      toolCalls: [{ id: 'call_write', name: 'write_file', arguments: { path: 'scripts/fib.sh', content: SCRIPT } }],
      usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
    },
  );
  llm.on(
    { toolCallId: 'call_write', toolResultContains: 'scripts/fib.sh' },
    {
      toolCalls: [
        {
          id: 'call_run',
          name: 'shell',
          arguments: { command: 'mkdir -p out && bash scripts/fib.sh > out/fib.txt && echo ran' },
        },
      ],
      usage: { prompt_tokens: 150, completion_tokens: 15, total_tokens: 165 },
    },
  );
  llm.on(
    { toolCallId: 'call_run', toolResultContains: 'exit code 0' },
    {
      toolCalls: [{ id: 'call_read', name: 'read_file', arguments: { path: 'out/fib.txt' } }],
      usage: { prompt_tokens: 180, completion_tokens: 10, total_tokens: 190 },
    },
  );
  llm.on(
    { toolCallId: 'call_read', toolResultContains: '0 1 1 2 3 5 8 13 21 34' },
    { content: FINAL, usage: { prompt_tokens: 200, completion_tokens: 30, total_tokens: 230 } },
  );
  runtime = await startRuntime({ llmUrl: llm.url });
});

afterAll(async () => {
  await runtime?.close();
  await llm?.stop();
});

describe('agent loop against an aimock upstream', () => {
  it('completes a multi-step tool task: write a script, run it, read its output, answer', async () => {
    const { runId, events } = await chat(runtime.client, {
      conversationId: 'conv_fib',
      content: 'Write a bash script that prints the first ten Fibonacci numbers, run it and tell me the output.',
    });

    expect(shape(events)).toEqual([
      'start',
      'text',
      'tool_call',
      'tool_result',
      'tool_call',
      'tool_result',
      'tool_call',
      'tool_result',
      'text',
      'done',
    ]);
    const [start] = events as [ChatEventOf<'start'>];
    expect(start).toEqual({ type: 'start', runId, conversationId: 'conv_fib', hand: 'tester', model: 'test-model' });
    expect(runId).toMatch(/^run_/);

    const calls = events.filter((e): e is ChatEventOf<'tool_call'> => e.type === 'tool_call');
    expect(calls.map((c) => [c.id, c.name])).toEqual([
      ['call_write', 'write_file'],
      ['call_run', 'shell'],
      ['call_read', 'read_file'],
    ]);
    expect(JSON.parse(calls[0]!.arguments)).toEqual({ path: 'scripts/fib.sh', content: SCRIPT });

    const results = events.filter((e): e is ChatEventOf<'tool_result'> => e.type === 'tool_result');
    expect(results.map((r) => [r.id, r.name, r.isError])).toEqual([
      ['call_write', 'write_file', false],
      ['call_run', 'shell', false],
      ['call_read', 'read_file', false],
    ]);
    expect(results[0]!.output).toBe(`created scripts/fib.sh (${Buffer.byteLength(SCRIPT)} B written)`);
    expect(results[1]!.output).toMatch(/^\[exit code 0 after \d+\.\d s\]\nran\n$/);
    expect(results[2]!.output).toBe('0 1 1 2 3 5 8 13 21 34 \n');
    for (const r of results) expect(r.ms).toBeGreaterThanOrEqual(0);

    // The work really happened in the workspace.
    expect(readFileSync(join(runtime.workspace, 'scripts/fib.sh'), 'utf8')).toBe(SCRIPT);
    expect(readFileSync(join(runtime.workspace, 'out/fib.txt'), 'utf8')).toBe('0 1 1 2 3 5 8 13 21 34 \n');

    expect(textOf(events)).toBe(`I'll write a small script, run it and check its output.${FINAL}`);

    const done = events.at(-1) as ChatEventOf<'done'>;
    expect(done.finishReason).toBe('stop');
    expect(done.iterations).toBe(4);
    expect(done.model).toBe('test-model');
    expect(done.usage).toEqual({ promptTokens: 630, completionTokens: 75, totalTokens: 705 });
    expect(done.newMessages).toEqual([
      {
        role: 'assistant',
        content: "I'll write a small script, run it and check its output.",
        toolCalls: [{ id: 'call_write', name: 'write_file', arguments: calls[0]!.arguments }],
      },
      { role: 'tool', toolCallId: 'call_write', name: 'write_file', content: results[0]!.output },
      {
        role: 'assistant',
        content: null,
        toolCalls: [{ id: 'call_run', name: 'shell', arguments: calls[1]!.arguments }],
      },
      { role: 'tool', toolCallId: 'call_run', name: 'shell', content: results[1]!.output },
      {
        role: 'assistant',
        content: null,
        toolCalls: [{ id: 'call_read', name: 'read_file', arguments: calls[2]!.arguments }],
      },
      { role: 'tool', toolCallId: 'call_read', name: 'read_file', content: '0 1 1 2 3 5 8 13 21 34 \n' },
      { role: 'assistant', content: FINAL },
    ]);

    // What the model was sent (aimock admitted it: the tenant key was the Bearer): the Hand's prompt,
    // its tools, streaming with usage.
    const requests = llm.getRequests().filter((r) => r.path === '/v1/chat/completions');
    expect(requests.map((r) => r.response.status)).toEqual([200, 200, 200, 200]);
    const first = requests[0]!.body as unknown as {
      model: string;
      stream: boolean;
      stream_options: unknown;
      tools: { function: { name: string } }[];
      messages: { role: string; content: string }[];
    };
    expect(first.model).toBe('test-model');
    expect(first.stream).toBe(true);
    expect(first.stream_options).toEqual({ include_usage: true });
    expect(first.tools.map((t) => t.function.name)).toEqual([
      'shell',
      'read_file',
      'write_file',
      'list_files',
      'fetch_url',
    ]);
    expect(first.messages[0]!.role).toBe('system');
    expect(first.messages[0]!.content).toContain('You are the tester test agent.');
    expect(first.messages[0]!.content).toContain(`Workspace: ${runtime.workspace}`);
  });

  it('continues a conversation from the context the platform stored', async () => {
    llm.on(
      { predicate: (req) => lastUserText(req as LlmRequest) === 'And the next one?' },
      { content: 'The next one is 55.', usage: { prompt_tokens: 300, completion_tokens: 6, total_tokens: 306 } },
    );
    const first = await chat(runtime.client, {
      conversationId: 'conv_ctx',
      content: 'Write a bash script that prints the first ten Fibonacci numbers, run it and tell me the output.',
    });
    const done = first.events.at(-1) as ChatEventOf<'done'>;
    const history = [
      {
        role: 'user' as const,
        content: 'Write a bash script that prints the first ten Fibonacci numbers, run it and tell me the output.',
      },
      ...done.newMessages,
    ];
    const second = await chat(runtime.client, {
      conversationId: 'conv_ctx',
      messages: history,
      content: 'And the next one?',
    });
    expect(shape(second.events)).toEqual(['start', 'text', 'done']);
    expect(textOf(second.events)).toBe('The next one is 55.');
    const sent = llm.getLastRequest()!.body as unknown as { messages: { role: string; tool_call_id?: string }[] };
    // system + stored history (user, 3 × assistant/tool, final assistant) + the new user message
    expect(sent.messages.map((m) => m.role)).toEqual([
      'system',
      'user',
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
      'user',
    ]);
    expect(sent.messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id)).toEqual([
      'call_write',
      'call_run',
      'call_read',
    ]);
  });

  it('streams text as it arrives, before the model has finished', async () => {
    llm.on(
      { userMessage: 'stream slowly' },
      { content: 'one two three four five six seven eight nine ten' },
      { chunkSize: 4, latency: 60 },
    );
    const { events } = await runtime.client.chat({
      conversationId: 'conv_stream',
      messages: [],
      message: { role: 'user', content: 'stream slowly' },
    });
    const arrivals: { type: string; at: number }[] = [];
    const all: ChatEvent[] = [];
    for await (const event of events) {
      arrivals.push({ type: event.type, at: performance.now() });
      all.push(event);
    }
    const texts = arrivals.filter((a) => a.type === 'text');
    expect(texts.length).toBeGreaterThanOrEqual(5);
    expect(arrivals.at(-1)!.at - texts[0]!.at).toBeGreaterThan(150);
    expect(textOf(all)).toBe('one two three four five six seven eight nine ten');
  });
});
