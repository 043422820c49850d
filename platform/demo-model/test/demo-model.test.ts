import { fileURLToPath } from 'node:url';
import { freePort, startProcess, waitForHttp } from '@agentstack/core';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoModel, startDemoModel } from '../src/server.js';

let model: DemoModel;
let client: OpenAI;

beforeAll(async () => {
  model = await startDemoModel({ port: 0, chunkDelayMs: 15, chunkSize: 10 });
  client = new OpenAI({ apiKey: 'unused', baseURL: `${model.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await model?.stop();
});

const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'list_files', parameters: { type: 'object', properties: {} } } },
];

describe('the demo model', () => {
  it('streams a greeting in many chunks with a pause between them, and reports usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'Hello there!' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const arrivals: number[] = [];
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content;
      if (delta) {
        text += delta;
        arrivals.push(performance.now());
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toMatch(/demo model/);
    expect(arrivals.length).toBeGreaterThan(20);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(15 * 10);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.prompt_tokens).toBeGreaterThan(0);
  });

  it('answers a request for code with fenced, language-tagged code blocks', async () => {
    const answer = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'Can you show me some code?' }],
    });
    const content = answer.choices[0]?.message.content ?? '';
    expect(content).toMatch(/```python\n[\s\S]+?\n```/);
    expect(content).toMatch(/```typescript\n[\s\S]+?\n```/);
  });

  it('calls the list_files tool when offered and asked about files, then answers the tool result', async () => {
    const first = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'What files are in my workspace?' }],
      tools,
    });
    const call = first.choices[0]?.message.tool_calls?.[0];
    expect(first.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call && 'function' in call ? call.function.name : '').toBe('list_files');
    const second = await client.chat.completions.create({
      model: 'demo',
      messages: [
        { role: 'user', content: 'What files are in my workspace?' },
        first.choices[0]!.message as OpenAI.Chat.Completions.ChatCompletionMessageParam,
        { role: 'tool', tool_call_id: call!.id, content: 'notes.md\nsales.csv' },
      ],
      tools,
    });
    expect(second.choices[0]?.message.content).toMatch(/workspace/);
    // Without the tool on offer it does not call it.
    const plain = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'What files are in my workspace?' }],
    });
    expect(plain.choices[0]?.message.tool_calls ?? []).toEqual([]);
  });

  it('answers anything else with a helpful explanation of demo mode', async () => {
    const answer = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'Explain quantum chromodynamics' }],
    });
    expect(answer.choices[0]?.message.content).toMatch(/OPENAI_API_KEY/);
  });

  it('main.ts serve listens on DEMO_MODEL_PORT and answers /health', async () => {
    const port = await freePort();
    const proc = startProcess(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), fileURLToPath(new URL('../src/main.ts', import.meta.url)), 'serve'],
      { env: { ...process.env, DEMO_MODEL_PORT: String(port), LOG_LEVEL: 'warn' } },
    );
    try {
      const res = await waitForHttp(`http://127.0.0.1:${port}/health`, 20_000);
      expect(res.status).toBe(200);
    } finally {
      await proc.stop();
    }
    expect(await proc.exited).toBe(0);
  });
});
