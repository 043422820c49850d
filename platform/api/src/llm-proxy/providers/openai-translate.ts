import type { ChatCompletion, ChatCompletionChunk, OpenAIUsage } from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { providerErrorMessage } from './http.js';
import { type Completion, ProviderError, type ProviderUsage, type StreamItem, type UpstreamCall } from './types.js';

/**
 * OpenAI chat completions upstream (OpenAI itself, and OpenAI-compatible servers: Ollama, vLLM, LM Studio,
 * the demo model server). The request passes through with three changes: the provider's model id, the output
 * cap the hold covers, and — when streaming — `stream_options.include_usage` forced on, because the final
 * usage chunk is what the call is billed from. Whether the client sees that chunk is decided by the proxy.
 */
export type OpenAIFlavour = 'openai' | 'compatible';

export function toOpenAIBody(call: UpstreamCall, flavour: OpenAIFlavour, stream: boolean): Record<string, unknown> {
  const {
    model: _model,
    stream: _stream,
    stream_options: _options,
    max_tokens,
    max_completion_tokens,
    ...rest
  } = call.request;
  // OpenAI's newer models take only max_completion_tokens; compatible servers know max_tokens. A client that
  // named one field explicitly keeps its choice.
  const field =
    max_completion_tokens != null
      ? 'max_completion_tokens'
      : max_tokens != null
        ? 'max_tokens'
        : flavour === 'openai'
          ? 'max_completion_tokens'
          : 'max_tokens';
  return {
    ...rest,
    model: call.upstreamModel,
    [field]: call.maxTokens,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
}

export function usageFromOpenAI(usage: unknown): ProviderUsage | undefined {
  if (!usage || typeof usage !== 'object') return undefined;
  const u = usage as Partial<OpenAIUsage>;
  if (typeof u.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number') return undefined;
  const inputTokens = Math.max(0, Math.trunc(u.prompt_tokens));
  const outputTokens = Math.max(0, Math.trunc(u.completion_tokens));
  return {
    inputTokens,
    outputTokens,
    openai: {
      ...u,
      prompt_tokens: inputTokens,
      completion_tokens: outputTokens,
      total_tokens: inputTokens + outputTokens,
    },
  };
}

export function fromOpenAICompletion(json: unknown): Completion {
  const body = json as Partial<ChatCompletion> | null;
  if (!body || typeof body !== 'object' || !Array.isArray(body.choices)) {
    throw new ProviderError(502, 'the model provider sent a response without choices');
  }
  const { model: _model, ...rest } = body as ChatCompletion;
  return { body: { ...rest, object: 'chat.completion' }, usage: usageFromOpenAI(body.usage) };
}

/** Chunks and usage from an OpenAI-style SSE stream; `[DONE]` ends it. */
export async function* openAIStreamItems(events: AsyncIterable<SseEvent>): AsyncGenerator<StreamItem> {
  let finished = false;
  for await (const event of events) {
    if (event.data === '[DONE]') return;
    let chunk: ChatCompletionChunk & { error?: unknown };
    try {
      chunk = JSON.parse(event.data);
    } catch {
      throw new ProviderError(502, 'the model provider sent a stream event that is not JSON', { afterOutput: true });
    }
    if (chunk.error) {
      throw new ProviderError(502, providerErrorMessage(JSON.stringify({ error: chunk.error })), { afterOutput: true });
    }
    const usage = usageFromOpenAI(chunk.usage);
    if (usage) yield { type: 'usage', usage };
    if (Array.isArray(chunk.choices) && chunk.choices.length > 0) {
      if (chunk.choices.some((choice) => choice.finish_reason)) finished = true;
      const { model: _model, usage: _usage, ...rest } = chunk;
      yield { type: 'chunk', chunk: rest };
    }
  }
  // Some compatible servers close without `[DONE]`; a stream that never finished a choice broke off.
  if (!finished) {
    throw new ProviderError(502, 'the model provider ended the stream before the answer was complete', {
      afterOutput: true,
    });
  }
}
