import { existsSync, readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatEvent, ChatEventOf } from '../src/events.js';
import {
  alive,
  chat,
  handToml,
  type LlmRequest,
  lastUserText,
  shape,
  startLlm,
  startRuntime,
  TENANT_KEY,
  type TestRuntime,
  toolResultsInTurn,
} from './helpers.js';

let llm: Awaited<ReturnType<typeof startLlm>>;
let runtime: TestRuntime;

const asked = (text: string) => (req: unknown) => lastUserText(req as LlmRequest) === text;
const requestsFor = (text: string) =>
  llm.getRequests().filter((r) => r.body && lastUserText(r.body as unknown as LlmRequest) === text).length;

beforeAll(async () => {
  llm = await startLlm({ apiKeys: [TENANT_KEY] });
  runtime = await startRuntime({
    llmUrl: llm.url,
    hands: {
      tester: handToml('tester'),
      short: handToml('short', { settings: 'max_iterations = 2' }),
      slow: handToml('slow', { settings: 'tool_timeout_seconds = 2' }),
      reader: handToml('reader', { tools: ['read_file', 'list_files'] }),
    },
  });
});

afterAll(async () => {
  await runtime?.close();
  await llm?.stop();
});

function results(events: ChatEvent[]) {
  return events.filter((e): e is ChatEventOf<'tool_result'> => e.type === 'tool_result');
}

describe('limits', () => {
  it('stops at the Hand’s max_iterations', async () => {
    // A model that never stops asking for tools (different arguments each time, so no loop is detected).
    llm.on({ predicate: asked('explore forever') }, (req) => {
      const n = toolResultsInTurn(req as LlmRequest);
      return {
        toolCalls: [{ id: `call_explore_${n}`, name: 'list_files', arguments: JSON.stringify({ max_entries: n + 1 }) }],
      };
    });
    const { events } = await chat(runtime.client, {
      hand: 'short',
      content: 'explore forever',
      conversationId: 'c_iter',
    });
    expect(shape(events)).toEqual(['start', 'tool_call', 'tool_result', 'tool_call', 'tool_result', 'done']);
    const done = events.at(-1) as ChatEventOf<'done'>;
    expect(done.finishReason).toBe('max_iterations');
    expect(done.iterations).toBe(2);
    expect(done.notice).toContain('limit of the short Hand');
    expect(done.newMessages.map((m) => m.role)).toEqual(['assistant', 'tool', 'assistant', 'tool']);
    expect(requestsFor('explore forever')).toBe(2);
  });

  it('detects a loop: the same tool with the same arguments three times in a row', async () => {
    // The same arguments each time, spelled differently (key order, spacing): still the same call.
    const spellings = [
      '{"path":".","recursive":false}',
      '{"recursive": false, "path": "."}',
      '{ "path" : ".", "recursive" : false }',
    ];
    llm.on({ predicate: asked('loop please') }, (req) => {
      const n = toolResultsInTurn(req as LlmRequest);
      return { toolCalls: [{ id: `call_loop_${n}`, name: 'list_files', arguments: spellings[n % 3]! }] };
    });
    const { events } = await chat(runtime.client, { content: 'loop please', conversationId: 'c_loop' });
    expect(shape(events)).toEqual([
      'start',
      'tool_call',
      'tool_result',
      'tool_call',
      'tool_result',
      'tool_call',
      'tool_result',
      'done',
    ]);
    const [first, second, third] = results(events);
    expect(first!.isError).toBe(false);
    expect(second!.isError).toBe(false);
    expect(third).toMatchObject({
      isError: true,
      output: 'not run: list_files was requested with identical arguments 3 times in a row',
    });
    const done = events.at(-1) as ChatEventOf<'done'>;
    expect(done.finishReason).toBe('loop_detected');
    expect(done.notice).toMatch(/same arguments 3 times in a row/);
    // The stored history stays valid: every tool call has its result.
    expect(done.newMessages.map((m) => m.role)).toEqual([
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
      'tool',
    ]);
    expect(done.newMessages.at(-1)).toMatchObject({ role: 'tool', toolCallId: 'call_loop_2', isError: true });
    expect(requestsFor('loop please')).toBe(3);
  });

  it('stops a tool at its time limit, kills its processes and lets the model react', async () => {
    llm.on(
      { predicate: (req) => asked('sleep a while')(req) && toolResultsInTurn(req as LlmRequest) === 0 },
      {
        toolCalls: [
          { id: 'call_sleep', name: 'shell', arguments: { command: 'echo $$ > sleeper.pid; exec sleep 30' } },
        ],
      },
    );
    llm.on(
      { toolCallId: 'call_sleep', toolResultContains: 'timed out' },
      { content: 'That took too long, so I stopped it.' },
    );
    const { events } = await chat(runtime.client, {
      hand: 'slow',
      content: 'sleep a while',
      conversationId: 'c_timeout',
    });
    expect(shape(events)).toEqual(['start', 'tool_call', 'tool_result', 'text', 'done']);
    const [result] = results(events);
    expect(result).toMatchObject({ isError: true, output: 'shell timed out after 2 s; it was stopped' });
    expect(result!.ms).toBeGreaterThanOrEqual(1_900);
    expect(result!.ms).toBeLessThan(6_000);
    const pid = Number(readFileSync(join(runtime.workspace, 'sleeper.pid'), 'utf8'));
    await waitFor(() => !alive(pid), { what: 'the timed-out command to be killed' });
    expect((events.at(-1) as ChatEventOf<'done'>).finishReason).toBe('stop');
  });

  it('refuses a tool outside the Hand’s allow-list (and never offers it)', async () => {
    llm.on(
      { predicate: (req) => asked('run a command')(req) && toolResultsInTurn(req as LlmRequest) === 0 },
      { toolCalls: [{ id: 'call_forbidden', name: 'shell', arguments: { command: 'touch pwned' } }] },
    );
    llm.on({ toolCallId: 'call_forbidden' }, { content: 'I am not allowed to run commands.' });
    const { events } = await chat(runtime.client, {
      hand: 'reader',
      content: 'run a command',
      conversationId: 'c_allow',
    });
    const [result] = results(events);
    expect(result).toMatchObject({
      name: 'shell',
      isError: true,
      output: 'tool "shell" is not available to the reader Hand (allowed tools: read_file, list_files)',
    });
    expect(existsSync(join(runtime.workspace, 'pwned'))).toBe(false);
    const offered = llm
      .getRequests()
      .filter((r) => r.body && lastUserText(r.body as unknown as LlmRequest) === 'run a command')
      .map((r) => (r.body as unknown as { tools: { function: { name: string } }[] }).tools.map((t) => t.function.name));
    expect(offered[0]).toEqual(['read_file', 'list_files']);
    expect((events.at(-1) as ChatEventOf<'done'>).finishReason).toBe('stop');
  });
});

describe('aborts', () => {
  it('a client that hangs up mid-tool stops the run and kills the tool', async () => {
    llm.on(
      { predicate: (req) => asked('hang around')(req) && toolResultsInTurn(req as LlmRequest) === 0 },
      { toolCalls: [{ id: 'call_hang', name: 'shell', arguments: { command: 'echo $$ > hang.pid; exec sleep 30' } }] },
    );
    const controller = new AbortController();
    const { events } = await runtime.client.chat(
      { conversationId: 'c_hangup', messages: [], message: { role: 'user', content: 'hang around' } },
      controller.signal,
    );
    const seen: string[] = [];
    const pidFile = join(runtime.workspace, 'hang.pid');
    await expect(
      (async () => {
        for await (const event of events) {
          seen.push(event.type);
          if (event.type === 'tool_call') {
            await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim(), { what: 'pid file' });
            controller.abort();
          }
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual(['start', 'tool_call']);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !alive(pid), { what: 'the shell command to be killed' });
    await waitFor(() => runtime.activeRuns() === 0, { what: 'the run to end' });
    expect(requestsFor('hang around')).toBe(1);
    // The conversation is free again.
    llm.on({ predicate: asked('are you there?') }, { content: 'Yes.' });
    const again = await chat(runtime.client, { conversationId: 'c_hangup', content: 'are you there?' });
    expect(shape(again.events)).toEqual(['start', 'text', 'done']);
  });

  it('a client that hangs up while the model streams aborts the upstream request', async () => {
    llm.on(
      { predicate: asked('tell a long story') },
      { content: 'once upon a time '.repeat(40) },
      { chunkSize: 3, latency: 50 },
    );
    // A TCP relay in front of aimock shows when the runtime drops the connection carrying the request.
    const upstream = new URL(llm.url);
    const carrying: { open: boolean }[] = [];
    const sockets = new Set<Socket>();
    const relay = createServer((client) => {
      sockets.add(client);
      const target = connect(Number(upstream.port), upstream.hostname);
      const seen = { open: true };
      client.once('data', (head: Buffer) => {
        if (head.toString().startsWith('POST /v1/chat/completions')) carrying.push(seen);
      });
      client.pipe(target).pipe(client);
      const drop = () => {
        seen.open = false;
        client.destroy();
        target.destroy();
      };
      for (const socket of [client, target]) {
        socket.on('close', drop);
        socket.on('error', drop);
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayed = await startRuntime({ llmUrl: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` });
    try {
      const controller = new AbortController();
      const { events } = await relayed.client.chat(
        { conversationId: 'c_stream_hangup', messages: [], message: { role: 'user', content: 'tell a long story' } },
        controller.signal,
      );
      const started = performance.now();
      await expect(
        (async () => {
          for await (const event of events) {
            if (event.type === 'text') {
              expect(carrying.map((c) => c.open)).toEqual([true]);
              controller.abort();
            }
          }
        })(),
      ).rejects.toMatchObject({ name: 'AbortError' });
      // Streaming the whole story takes ~11 s; the run and its upstream request end as soon as the client is gone.
      await waitFor(() => relayed.activeRuns() === 0, { what: 'the run to end', timeoutMs: 6_000 });
      await waitFor(() => carrying.length === 1 && !carrying[0]!.open, {
        what: 'the upstream request to be dropped',
        timeoutMs: 6_000,
      });
      expect(performance.now() - started).toBeLessThan(6_000);
    } finally {
      await relayed.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it('cancel stops the run, kills the tool and still reports what happened', async () => {
    llm.on(
      { predicate: (req) => asked('wait for me')(req) && toolResultsInTurn(req as LlmRequest) === 0 },
      {
        content: 'Starting a long job.',
        toolCalls: [{ id: 'call_wait', name: 'shell', arguments: { command: 'echo $$ > wait.pid; exec sleep 30' } }],
      },
    );
    const { runId, events } = await runtime.client.chat({
      conversationId: 'c_cancel',
      messages: [],
      message: { role: 'user', content: 'wait for me' },
    });
    const pidFile = join(runtime.workspace, 'wait.pid');
    const all: ChatEvent[] = [];
    for await (const event of events) {
      all.push(event);
      if (event.type === 'tool_call') {
        await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim(), { what: 'pid file' });
        expect(await runtime.client.cancel(runId)).toBe(true);
      }
    }
    expect(shape(all)).toEqual(['start', 'text', 'tool_call', 'tool_result', 'done']);
    expect(results(all)[0]).toMatchObject({
      id: 'call_wait',
      isError: true,
      output: 'cancelled by the user before it finished',
    });
    const done = all.at(-1) as ChatEventOf<'done'>;
    expect(done).toMatchObject({ finishReason: 'cancelled', notice: 'Stopped by the user.', iterations: 1 });
    expect(done.newMessages).toEqual([
      {
        role: 'assistant',
        content: 'Starting a long job.',
        toolCalls: [
          {
            id: 'call_wait',
            name: 'shell',
            arguments: JSON.stringify({ command: 'echo $$ > wait.pid; exec sleep 30' }),
          },
        ],
      },
      {
        role: 'tool',
        toolCallId: 'call_wait',
        name: 'shell',
        content: 'cancelled by the user before it finished',
        isError: true,
      },
    ]);
    await waitFor(() => !alive(Number(readFileSync(pidFile, 'utf8'))), { what: 'the cancelled command to be killed' });
    expect(await runtime.client.cancel(runId)).toBe(false);
  });
  it('cancel while the model is still writing keeps the partial answer', async () => {
    llm.on({ predicate: asked('write an essay') }, { content: 'word '.repeat(200) }, { chunkSize: 5, latency: 40 });
    const { runId, events } = await runtime.client.chat({
      conversationId: 'c_cancel_text',
      messages: [],
      message: { role: 'user', content: 'write an essay' },
    });
    const all: ChatEvent[] = [];
    for await (const event of events) {
      all.push(event);
      if (all.filter((e) => e.type === 'text').length === 3) await runtime.client.cancel(runId);
    }
    const done = all.at(-1) as ChatEventOf<'done'>;
    expect(done.finishReason).toBe('cancelled');
    const partial = all.map((e) => (e.type === 'text' ? e.delta : '')).join('');
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan('word '.repeat(200).length);
    expect(done.newMessages).toEqual([{ role: 'assistant', content: partial }]);
  });
});

describe('upstream errors', () => {
  it('maps 402 to credits_exhausted and keeps the upstream message', async () => {
    llm.on(
      { predicate: asked('I am broke') },
      {
        error: {
          message: 'Insufficient credits: balance is $0.000000; top up to continue',
          type: 'insufficient_credits',
        },
        status: 402,
      },
    );
    const { events } = await chat(runtime.client, { content: 'I am broke', conversationId: 'c_402' });
    expect(shape(events)).toEqual(['start', 'error']);
    expect(events[1]).toEqual({
      type: 'error',
      code: 'credits_exhausted',
      message: 'Insufficient credits: balance is $0.000000; top up to continue',
      status: 402,
      usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
      iterations: 1,
      newMessages: [],
    });
  });

  it('keeps the work done before an upstream failure', async () => {
    llm.on(
      { predicate: (req) => asked('work then fail')(req) && toolResultsInTurn(req as LlmRequest) === 0 },
      {
        toolCalls: [{ id: 'call_before', name: 'write_file', arguments: { path: 'before.txt', content: 'kept' } }],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      },
    );
    llm.on({ toolCallId: 'call_before' }, { error: { message: 'credits exhausted mid-task', type: 'x' }, status: 402 });
    const { events } = await chat(runtime.client, { content: 'work then fail', conversationId: 'c_402b' });
    expect(shape(events)).toEqual(['start', 'tool_call', 'tool_result', 'error']);
    const error = events.at(-1) as ChatEventOf<'error'>;
    expect(error).toMatchObject({ code: 'credits_exhausted', message: 'credits exhausted mid-task', iterations: 2 });
    expect(error.usage).toEqual({ promptTokens: 10, completionTokens: 5, totalTokens: 15 });
    expect(error.newMessages.map((m) => m.role)).toEqual(['assistant', 'tool']);
    expect(readFileSync(join(runtime.workspace, 'before.txt'), 'utf8')).toBe('kept');
  });

  it('maps 429, 5xx, a wrong key and an unreachable proxy', async () => {
    llm.on(
      { predicate: asked('rate me') },
      { error: { message: 'Rate limit: 100 requests/min', type: 'rate_limit' }, status: 429 },
    );
    llm.on(
      { predicate: asked('explode') },
      { error: { message: 'provider exploded', type: 'server_error' }, status: 502 },
    );
    const limited = (await chat(runtime.client, { content: 'rate me', conversationId: 'c_429' })).events.at(-1);
    expect(limited).toMatchObject({
      type: 'error',
      code: 'llm_rate_limited',
      status: 429,
      message: 'Rate limit: 100 requests/min',
    });
    const exploded = (await chat(runtime.client, { content: 'explode', conversationId: 'c_502' })).events.at(-1);
    expect(exploded).toMatchObject({
      type: 'error',
      code: 'llm_unavailable',
      status: 502,
      message: 'provider exploded',
    });

    const wrongKey = await startRuntime({ llmUrl: llm.url, env: { PLATFORM_API_KEY: 'sk-someone-else' } });
    try {
      const denied = (await chat(wrongKey.client, { content: 'hello' })).events.at(-1);
      expect(denied).toMatchObject({ type: 'error', code: 'llm_unauthorized', status: 401 });
    } finally {
      await wrongKey.close();
    }

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const nowhere = await startRuntime({ llmUrl: `http://127.0.0.1:${port}` });
    try {
      const down = (await chat(nowhere.client, { content: 'hello' })).events.at(-1);
      expect(down).toMatchObject({ type: 'error', code: 'llm_unavailable' });
      expect((down as ChatEventOf<'error'>).message).toMatch(/^could not reach the LLM proxy/);
    } finally {
      await nowhere.close();
    }
  });
});
