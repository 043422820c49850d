import type { ChatRequest, FinishReason } from '../openai-schema.js';
import { UnsupportedByProvider } from './types.js';

/** `data:image/png;base64,AAAA` → its media type and base64 data. */
export function parseDataUrl(url: string): { mediaType: string; data: string } | undefined {
  const match = /^data:(image\/[a-z0-9.+-]+);base64,(.*)$/is.exec(url);
  return match ? { mediaType: match[1]!.toLowerCase(), data: match[2]! } : undefined;
}

/**
 * Tool-call arguments are a JSON text in the OpenAI format and an object for Anthropic and Gemini: parse them,
 * and refuse (400, naming the field) what is not a JSON object.
 */
export function parseToolArguments(text: string, param: string, provider: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UnsupportedByProvider(param, `${param}: must be a JSON object for ${provider} models`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UnsupportedByProvider(param, `${param}: must be a JSON object for ${provider} models`);
  }
  return parsed as Record<string, unknown>;
}

/** OpenAI-only options that Anthropic and Gemini have no equivalent for: refused rather than silently dropped. */
export function refuseOpenAIOnly(request: ChatRequest, provider: string, also: (keyof ChatRequest)[] = []): void {
  const refuse = (param: string, what: string) => {
    throw new UnsupportedByProvider(param, `${param}: ${what} is not supported by ${provider} models`);
  };
  if (request.logit_bias && Object.keys(request.logit_bias).length > 0) refuse('logit_bias', 'logit_bias');
  if (request.logprobs) refuse('logprobs', 'logprobs');
  if (request.top_logprobs) refuse('top_logprobs', 'top_logprobs');
  if (request.reasoning_effort != null) refuse('reasoning_effort', 'reasoning_effort');
  for (const key of also) {
    const value = request[key];
    if (value != null && value !== 0 && value !== false) refuse(key, key);
  }
}

/** A message's content as plain text (text parts joined): system, developer and tool messages. */
export const contentText = (content: string | { text: string }[]): string =>
  typeof content === 'string' ? content : content.map((p) => p.text).join('');

/** Every system and developer message, in order, as one instruction text. */
export function systemText(request: ChatRequest): string | undefined {
  const parts: string[] = [];
  for (const message of request.messages) {
    if (message.role === 'system' || message.role === 'developer') {
      const text = contentText(message.content);
      if (text) parts.push(text);
    }
  }
  return parts.length ? parts.join('\n\n') : undefined;
}

export const stopList = (stop: ChatRequest['stop']): string[] | undefined =>
  stop == null ? undefined : typeof stop === 'string' ? [stop] : stop.length ? stop : undefined;

/** Finish reason when the model made tool calls: OpenAI reports `tool_calls` instead of `stop`. */
export const withToolCalls = (reason: FinishReason, madeToolCalls: boolean): FinishReason =>
  madeToolCalls && reason === 'stop' ? 'tool_calls' : reason;
