import type { PlatformChatEvent } from './chat-events';

/** How the chat view holds a conversation: user messages, and one assistant block per turn. */

export interface ToolPart {
  type: 'tool';
  id: string;
  name: string;
  arguments: string;
  result?: { output: string; isError: boolean; truncated?: boolean; ms?: number };
}
export type Part = { type: 'text'; text: string } | ToolPart;

export interface UserItem {
  role: 'user';
  id: string;
  content: string;
  attachments: string[];
}

export interface AssistantItem {
  role: 'assistant';
  id: string;
  parts: Part[];
  status: 'streaming' | 'done' | 'stopped' | 'error';
  /** The run is waiting for the tenant's runtime to come up. */
  runtimeStarting?: boolean;
  error?: { code: string; message: string };
  notice?: string;
  model?: string;
  chargedMicros?: string;
}

export type ChatItem = UserItem | AssistantItem;

/** A message as `GET /api/conversations/:id/messages` returns it. */
export interface StoredMessage {
  id: string;
  role: 'user' | 'assistant' | 'tool' | 'system';
  content: string;
  metadata?: Record<string, unknown> | null;
}

const asString = (value: unknown) => (typeof value === 'string' ? value : '');

/** Stored messages (oldest first) → chat items: consecutive assistant and tool messages form one block. */
export function itemsFromHistory(messages: StoredMessage[]): ChatItem[] {
  const items: ChatItem[] = [];
  for (const message of messages) {
    const meta = message.metadata ?? {};
    if (message.role === 'user') {
      const attachments = Array.isArray(meta.attachments)
        ? meta.attachments
            .map((a) => (typeof a === 'string' ? a : asString((a as { path?: unknown })?.path)))
            .filter(Boolean)
        : [];
      items.push({ role: 'user', id: message.id, content: message.content, attachments });
      continue;
    }
    if (message.role === 'system') continue;
    let block = items.at(-1);
    if (block?.role !== 'assistant') {
      block = { role: 'assistant', id: message.id, parts: [], status: 'done' };
      items.push(block);
    }
    if (message.role === 'assistant') {
      if (message.content) appendText(block, message.content, true);
      const calls = Array.isArray(meta.toolCalls) ? meta.toolCalls : [];
      for (const call of calls as { id?: unknown; name?: unknown; arguments?: unknown }[]) {
        block.parts.push({
          type: 'tool',
          id: asString(call.id),
          name: asString(call.name),
          arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {}),
        });
      }
      if (meta.stopped === true) block.status = 'stopped';
      if (meta.error) {
        const err = meta.error as { code?: unknown; message?: unknown } | string;
        block.status = 'error';
        block.error =
          typeof err === 'string'
            ? { code: 'error', message: err }
            : { code: asString(err.code) || 'error', message: asString(err.message) || 'The run failed.' };
      }
      if (typeof meta.model === 'string') block.model = meta.model;
    } else {
      const callId = asString(meta.toolCallId);
      const part = block.parts.find((p): p is ToolPart => p.type === 'tool' && p.id === callId && !p.result);
      const result = { output: message.content, isError: meta.isError === true };
      if (part) part.result = result;
      else block.parts.push({ type: 'tool', id: callId, name: asString(meta.name), arguments: '', result });
    }
  }
  return items;
}

function appendText(block: AssistantItem, text: string, separate = false) {
  const last = block.parts.at(-1);
  if (last?.type === 'text' && !separate) last.text += text;
  else if (last?.type === 'text' && separate) last.text += `\n\n${text}`;
  else block.parts.push({ type: 'text', text });
}

/** Applies one streamed event to the turn's assistant block (returns a new object for React). */
export function applyEvent(block: AssistantItem, event: PlatformChatEvent): AssistantItem {
  const next: AssistantItem = { ...block, parts: block.parts.map((p) => ({ ...p })) };
  switch (event.type) {
    case 'runtime':
      next.runtimeStarting = event.state === 'starting';
      break;
    case 'start':
      next.runtimeStarting = false;
      next.model = event.model;
      break;
    case 'text':
      next.runtimeStarting = false;
      appendText(next, event.delta);
      break;
    case 'tool_call':
      next.parts.push({ type: 'tool', id: event.id, name: event.name, arguments: event.arguments });
      break;
    case 'tool_result': {
      const part = next.parts.find((p): p is ToolPart => p.type === 'tool' && p.id === event.id);
      const result = { output: event.output, isError: event.isError, truncated: event.truncated, ms: event.ms };
      if (part) part.result = result;
      else next.parts.push({ type: 'tool', id: event.id, name: event.name, arguments: '', result });
      break;
    }
    case 'done':
      next.status = event.finishReason === 'cancelled' ? 'stopped' : 'done';
      next.runtimeStarting = false;
      if (event.notice) next.notice = event.notice;
      if (event.model) next.model = event.model;
      if (event.chargedMicros) next.chargedMicros = event.chargedMicros;
      if (event.messageIds?.[0]) next.id = event.messageIds[0];
      break;
    case 'error':
      next.status = 'error';
      next.runtimeStarting = false;
      next.error = { code: event.code, message: event.message };
      if (event.chargedMicros) next.chargedMicros = event.chargedMicros;
      break;
    default:
      break;
  }
  return next;
}

/** The plain text of a block (what the user sees, without tool details). */
export const blockText = (block: AssistantItem) =>
  block.parts
    .filter((p): p is { type: 'text'; text: string } => p.type === 'text')
    .map((p) => p.text)
    .join('\n\n');
