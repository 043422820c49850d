import type { ChatRequest } from './openai-schema.js';
import { textOf } from './openai-schema.js';

/**
 * Token estimates, for the two places the provider's own count is not available.
 *
 * 1. Before forwarding (the hold): an UPPER BOUND of the input tokens, `inputTokensUpperBound`. The byte-level
 *    BPE tokenizers of OpenAI and Anthropic and Gemini's SentencePiece (with byte fallback) never make a token
 *    out of less than one byte, so a text of B UTF-8 bytes is at most B tokens. To the bytes of every text the
 *    provider reads (message contents, tool-call names and arguments, tool results, tool definitions as JSON,
 *    a JSON schema response format) it adds fixed overheads for what providers wrap around them:
 *      - TOKENS_PER_REQUEST (16) once, TOKENS_PER_MESSAGE (8) per message (role markers, separators);
 *      - TOKENS_FOR_TOOLS (1,000) when tools are offered (Anthropic, for one, adds a tool-use system prompt
 *        of a few hundred tokens);
 *      - TOKENS_PER_IMAGE (2,000) per image: OpenAI's gpt-4o bills at most ~1,450 tokens for an image at high
 *        detail, Anthropic ~1,600, Gemini 258. (Models that multiply image tokens, such as gpt-4o-mini, can
 *        exceed it; the settlement still bills the provider's exact count.)
 *    Typical English text is ~4 bytes per token, so the bound holds about four times the real input: the
 *    hold is released at settlement, only the exact charge stays.
 * 2. After a call the provider did not report usage for (the caller left and the proxy had to stop reading,
 *    or an OpenAI-compatible server without usage reporting): a TYPICAL count, `typicalTokens`, of ⌈bytes/3⌉
 *    — a little denser than English prose and code tokenize, so the estimate rarely falls short of what the
 *    provider bills. Such usage rows are marked `usage_source = 'estimated'`.
 */

export const TOKENS_PER_REQUEST = 16;
export const TOKENS_PER_MESSAGE = 8;
export const TOKENS_FOR_TOOLS = 1_000;
export const TOKENS_PER_IMAGE = 2_000;
export const BYTES_PER_TYPICAL_TOKEN = 3;

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

interface Measured {
  bytes: number;
  images: number;
}

function measure(request: ChatRequest): Measured {
  let total = 0;
  let images = 0;
  for (const message of request.messages) {
    if (message.role === 'user' && Array.isArray(message.content)) {
      for (const part of message.content) {
        if (part.type === 'text') total += bytes(part.text);
        else images += 1;
      }
    } else if (message.role === 'assistant') {
      total += bytes(textOf(message.content)) + bytes(message.refusal ?? '');
      for (const call of message.tool_calls ?? []) {
        total += bytes(call.id) + bytes(call.function.name) + bytes(call.function.arguments);
      }
    } else if (message.role === 'tool') {
      total += bytes(message.tool_call_id) + bytes(textOf(message.content));
    } else {
      total += bytes(textOf(message.content as string | { text: string }[]));
    }
    if ('name' in message && message.name) total += bytes(message.name);
  }
  if (request.tools?.length) total += bytes(JSON.stringify(request.tools));
  if (request.response_format?.type === 'json_schema') total += bytes(JSON.stringify(request.response_format));
  return { bytes: total, images };
}

function overhead(request: ChatRequest, images: number): number {
  return (
    TOKENS_PER_REQUEST +
    TOKENS_PER_MESSAGE * request.messages.length +
    (request.tools?.length ? TOKENS_FOR_TOOLS : 0) +
    TOKENS_PER_IMAGE * images
  );
}

/** At least as many input tokens as any of the providers will count for this request (see above). */
export function inputTokensUpperBound(request: ChatRequest): number {
  const { bytes: total, images } = measure(request);
  return total + overhead(request, images);
}

/** A typical token count of a text: ⌈UTF-8 bytes / 3⌉. */
export const typicalTokens = (text: string): number => Math.ceil(bytes(text) / BYTES_PER_TYPICAL_TOKEN);

/** A typical count of the input tokens of a request, for billing a call whose usage the provider never sent. */
export function typicalInputTokens(request: ChatRequest): number {
  const { bytes: total, images } = measure(request);
  return Math.ceil(total / BYTES_PER_TYPICAL_TOKEN) + overhead(request, images);
}
