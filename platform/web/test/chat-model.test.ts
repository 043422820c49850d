import { readSseJson } from '@agentsquads/runtime/events';
import { describe, expect, it } from 'vitest';
import { asChatEvent, errorMessage } from '../src/lib/chat-events';
import { type AssistantItem, applyEvent, blockText, itemsFromHistory } from '../src/lib/chat-model';

describe('itemsFromHistory', () => {
  it('folds assistant and tool messages of one turn into one block, tool results matched by id', () => {
    const items = itemsFromHistory([
      { id: 'm1', role: 'user', content: 'files?', metadata: { attachments: [{ path: 'uploads/a.txt' }] } },
      {
        id: 'm2',
        role: 'assistant',
        content: 'Let me look.',
        metadata: { toolCalls: [{ id: 'c1', name: 'list_files', arguments: '{"path":"."}' }] },
      },
      { id: 'm3', role: 'tool', content: 'uploads/', metadata: { toolCallId: 'c1', name: 'list_files' } },
      { id: 'm4', role: 'assistant', content: 'One folder.', metadata: { model: 'demo' } },
      { id: 'm5', role: 'user', content: 'again', metadata: {} },
      { id: 'm6', role: 'assistant', content: 'Part', metadata: { stopped: true } },
    ]);
    expect(items).toHaveLength(4);
    expect(items[0]).toEqual({ role: 'user', id: 'm1', content: 'files?', attachments: ['uploads/a.txt'] });
    const turn = items[1] as AssistantItem;
    expect(turn.parts).toEqual([
      { type: 'text', text: 'Let me look.' },
      {
        type: 'tool',
        id: 'c1',
        name: 'list_files',
        arguments: '{"path":"."}',
        result: { output: 'uploads/', isError: false },
      },
      { type: 'text', text: 'One folder.' },
    ]);
    expect(turn.model).toBe('demo');
    expect((items[3] as AssistantItem).status).toBe('stopped');
  });
});

describe('applyEvent', () => {
  it('builds the streamed block from runtime and platform events', () => {
    let block: AssistantItem = { role: 'assistant', id: 'local', parts: [], status: 'streaming' };
    const events = [
      { type: 'runtime', state: 'starting' },
      { type: 'start', runId: 'r', conversationId: 'c', hand: 'assistant', model: 'demo' },
      { type: 'text', delta: 'Hel' },
      { type: 'text', delta: 'lo' },
      { type: 'tool_call', id: 't1', name: 'shell', arguments: '{}' },
      {
        type: 'tool_result',
        id: 't1',
        name: 'shell',
        output: 'ok',
        truncated: false,
        outputChars: 2,
        isError: false,
        ms: 5,
      },
      { type: 'text', delta: 'Done.' },
      {
        type: 'done',
        finishReason: 'stop',
        usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
        iterations: 2,
        model: 'demo',
        newMessages: [],
        messageIds: ['msg_1'],
        chargedMicros: '3000',
        balanceMicros: '997000',
      },
    ];
    const seen: boolean[] = [];
    for (const raw of events) {
      const event = asChatEvent(raw);
      expect(event).toBeDefined();
      block = applyEvent(block, event!);
      seen.push(Boolean(block.runtimeStarting));
    }
    expect(seen.slice(0, 2)).toEqual([true, false]);
    expect(blockText(block)).toBe('Hello\n\nDone.');
    expect(block).toMatchObject({ status: 'done', id: 'msg_1', chargedMicros: '3000', model: 'demo' });
    expect(block.parts[1]).toMatchObject({ type: 'tool', result: { output: 'ok', ms: 5 } });
  });

  it('marks errors, and a cancelled run as stopped', () => {
    const base: AssistantItem = { role: 'assistant', id: 'x', parts: [], status: 'streaming' };
    const failed = applyEvent(base, asChatEvent({ type: 'error', code: 'credits_exhausted', message: 'no credit' })!);
    expect(failed).toMatchObject({ status: 'error', error: { code: 'credits_exhausted' } });
    const cancelled = applyEvent(
      base,
      asChatEvent({ type: 'done', finishReason: 'cancelled', usage: {}, iterations: 0, model: 'm', newMessages: [] })!,
    );
    expect(cancelled.status).toBe('stopped');
  });

  it('ignores event types it does not know', () => {
    expect(asChatEvent({ type: 'future_thing' })).toBeUndefined();
    expect(asChatEvent({ type: 'text' })).toBeUndefined();
  });
});

describe('readSseJson', () => {
  it('parses frames split across chunks, CRLF line ends and keep-alive comments', async () => {
    const parts = [
      'event: text\r\ndata: {"type":"te',
      'xt","delta":"a"}\r\n\r\n: keep-alive\n\n',
      'data: {"type":"done"}\n\n',
    ];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
        controller.close();
      },
    });
    const out: unknown[] = [];
    for await (const event of readSseJson(body)) out.push(event);
    expect(out).toEqual([{ type: 'text', delta: 'a' }, { type: 'done' }]);
  });
});

describe('errorMessage', () => {
  it('reads the project envelope and Better Auth errors', () => {
    expect(errorMessage({ error: { code: 'insufficient_credits', message: 'top up', status: 402 } }, 'x')).toEqual({
      code: 'insufficient_credits',
      message: 'top up',
    });
    expect(errorMessage({ code: 'INVALID_EMAIL_OR_PASSWORD', message: 'Invalid email or password' }, 'x').code).toBe(
      'INVALID_EMAIL_OR_PASSWORD',
    );
    expect(errorMessage(null, 'fallback')).toEqual({ code: 'error', message: 'fallback' });
  });
});
