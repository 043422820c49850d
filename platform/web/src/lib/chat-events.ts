import type { ChatEventOf, ErrorCode } from '@agentsquads/runtime';

/**
 * What `POST /api/chat` streams (platform/api/CHAT.md): the runtime's events plus the platform's own
 * (`conversation`, `runtime`) and billing on the last event.
 */
export interface Billing {
  messageIds?: string[];
  chargedMicros?: string;
  balanceMicros?: string;
}

export type PlatformChatEvent =
  | {
      type: 'conversation';
      conversationId: string;
      title: string;
      userMessageId: string;
      created: boolean;
    }
  | { type: 'runtime'; state: string; message?: string }
  | ChatEventOf<'start'>
  | ChatEventOf<'text'>
  | ChatEventOf<'tool_call'>
  | ChatEventOf<'tool_result'>
  | (ChatEventOf<'done'> & Billing)
  | (Omit<ChatEventOf<'error'>, 'code' | 'usage' | 'iterations' | 'newMessages'> & {
      code: ErrorCode | 'runtime_unavailable' | (string & {});
      usage?: ChatEventOf<'error'>['usage'];
    } & Billing);

const TYPES = new Set(['conversation', 'runtime', 'start', 'text', 'tool_call', 'tool_result', 'done', 'error']);

/** Accepts an event the UI knows how to show; unknown types (a newer API) are ignored, not fatal. */
export function asChatEvent(value: unknown): PlatformChatEvent | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !TYPES.has(type)) return undefined;
  if (type === 'text' && typeof (value as { delta?: unknown }).delta !== 'string') return undefined;
  return value as PlatformChatEvent;
}

/** The project's error envelope, or Better Auth's `{ code, message }`, as one readable line. */
export function errorMessage(body: unknown, fallback: string): { code: string; message: string } {
  if (body && typeof body === 'object') {
    const envelope = (body as { error?: { code?: unknown; message?: unknown } }).error;
    if (envelope && typeof envelope === 'object' && typeof envelope.message === 'string') {
      return { code: typeof envelope.code === 'string' ? envelope.code : 'error', message: envelope.message };
    }
    const flat = body as { code?: unknown; message?: unknown };
    if (typeof flat.message === 'string' && flat.message) {
      return { code: typeof flat.code === 'string' ? flat.code : 'error', message: flat.message };
    }
  }
  return { code: 'error', message: fallback };
}
