import type { ChatCompletion, ChatCompletionChunk, ChatRequest, OpenAIUsage } from '../openai-schema.js';

/** Token counts as the provider reported them, and the OpenAI-shaped usage object to show the client. */
export interface ProviderUsage {
  inputTokens: number;
  outputTokens: number;
  openai: OpenAIUsage;
}

/** What a provider is asked to do: the validated request, with the model and output cap already decided. */
export interface UpstreamCall {
  request: ChatRequest;
  upstreamModel: string;
  /** The output token cap the hold covers; always sent upstream. */
  maxTokens: number;
  /** The id and creation time of the chat completion the client will see. */
  id: string;
  created: number;
  signal: AbortSignal;
}

/** Chunks without `model` (the proxy stamps its own model name on everything it sends). */
export type UpstreamChunk = Omit<ChatCompletionChunk, 'model'>;

export type StreamItem =
  | { type: 'chunk'; chunk: UpstreamChunk }
  /** Cumulative usage so far: later items replace earlier ones. */
  | { type: 'usage'; usage: ProviderUsage };

export interface Completion {
  body: Omit<ChatCompletion, 'model'>;
  usage: ProviderUsage | undefined;
}

/**
 * One upstream wire format (OpenAI chat completions and its compatibles, Anthropic Messages, Gemini
 * generateContent) behind the OpenAI shape the proxy speaks. `openStream` resolves once the provider has
 * accepted the request (so refusals become proper HTTP statuses), then the items arrive.
 */
export interface Provider {
  readonly kind: 'openai' | 'anthropic' | 'google';
  /** Who serves it, for messages and logs ("OpenAI", "Anthropic", "Ollama", "the demo model server"). */
  readonly label: string;
  complete(call: UpstreamCall): Promise<Completion>;
  openStream(call: UpstreamCall): Promise<AsyncIterable<StreamItem>>;
}

/**
 * The provider failed. `status` is its HTTP status (0: no answer — connection refused, reset, timed out);
 * `afterOutput` is true when it failed after a stream had started.
 */
export class ProviderError extends Error {
  constructor(
    readonly status: number,
    readonly providerMessage: string,
    readonly options: { retryAfter?: string; timeout?: boolean; afterOutput?: boolean; cause?: unknown } = {},
  ) {
    super(`provider error${status ? ` ${status}` : ''}: ${providerMessage}`, { cause: options.cause });
    this.name = 'ProviderError';
  }
}

/** A provider feature the request asks for that this provider's API does not have: a 400 for the client. */
export class UnsupportedByProvider extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnsupportedByProvider';
  }
}
