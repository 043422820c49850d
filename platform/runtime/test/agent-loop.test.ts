import { describe, expect, it } from 'vitest';
import { repairToolPairs } from '../src/agent-loop.js';
import type { ChatMessage } from '../src/events.js';

describe('repairToolPairs', () => {
  it('leaves a valid history alone', () => {
    const history: ChatMessage[] = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'a', name: 'shell', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'a', name: 'shell', content: 'ok' },
      { role: 'assistant', content: 'done' },
    ];
    expect(repairToolPairs(history)).toEqual(history);
  });

  it('fills in missing results and drops results without a call', () => {
    const history: ChatMessage[] = [
      { role: 'tool', toolCallId: 'orphan', name: 'shell', content: 'lost' },
      { role: 'user', content: 'hi' },
      {
        role: 'assistant',
        content: null,
        toolCalls: [
          { id: 'a', name: 'shell', arguments: '{}' },
          { id: 'b', name: 'read_file', arguments: '{}' },
        ],
      },
      { role: 'tool', toolCallId: 'b', name: 'read_file', content: 'text' },
      { role: 'user', content: 'again' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'c', name: 'shell', arguments: '{}' }] },
    ];
    expect(repairToolPairs(history)).toEqual([
      { role: 'user', content: 'hi' },
      history[2],
      { role: 'tool', toolCallId: 'b', name: 'read_file', content: 'text' },
      { role: 'tool', toolCallId: 'a', name: 'shell', content: '(no result was recorded)', isError: true },
      { role: 'user', content: 'again' },
      history[5],
      { role: 'tool', toolCallId: 'c', name: 'shell', content: '(no result was recorded)', isError: true },
    ]);
  });
});
