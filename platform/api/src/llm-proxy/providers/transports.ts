import { parseSse } from '../sse.js';
import { anthropicStreamItems, fromAnthropicMessage, toAnthropicBody } from './anthropic-translate.js';
import { fromGeminiResponse, geminiStreamItems, toGeminiBody } from './gemini-translate.js';
import { postUpstream, readJson, streamBody, type UpstreamTimeouts } from './http.js';
import { fromOpenAICompletion, type OpenAIFlavour, openAIStreamItems, toOpenAIBody } from './openai-translate.js';
import type { Completion, Provider, StreamItem, UpstreamCall } from './types.js';

const trimSlash = (url: string) => url.replace(/\/+$/, '');

/** OpenAI, or any server speaking its chat completions API at `<baseUrl>/chat/completions`. */
export class OpenAIProvider implements Provider {
  readonly kind = 'openai' as const;
  constructor(
    readonly label: string,
    private readonly options: {
      baseUrl: string;
      apiKey: string | undefined;
      flavour: OpenAIFlavour;
      timeouts: UpstreamTimeouts;
    },
  ) {}

  private post(call: UpstreamCall, stream: boolean) {
    return postUpstream(`${trimSlash(this.options.baseUrl)}/chat/completions`, {
      headers: {
        ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
        ...(stream ? { accept: 'text/event-stream' } : {}),
      },
      body: toOpenAIBody(call, this.options.flavour, stream),
      signal: call.signal,
      timeouts: this.options.timeouts,
    });
  }

  async complete(call: UpstreamCall): Promise<Completion> {
    const upstream = await this.post(call, false);
    return fromOpenAICompletion(await readJson(upstream, call.signal));
  }

  async openStream(call: UpstreamCall): Promise<AsyncIterable<StreamItem>> {
    const upstream = await this.post(call, true);
    return openAIStreamItems(parseSse(streamBody(upstream, call.signal, this.options.timeouts.idleTimeoutMs)));
  }
}

export const ANTHROPIC_VERSION = '2023-06-01';

/** Anthropic's Messages API at `<baseUrl>/v1/messages`. */
export class AnthropicProvider implements Provider {
  readonly kind = 'anthropic' as const;
  readonly label = 'Anthropic';
  constructor(private readonly options: { baseUrl: string; apiKey: string | undefined; timeouts: UpstreamTimeouts }) {}

  private post(call: UpstreamCall, stream: boolean) {
    // Translate before opening a connection: a request Anthropic cannot take is the client's 400.
    const body = toAnthropicBody(call, stream);
    return postUpstream(`${trimSlash(this.options.baseUrl)}/v1/messages`, {
      headers: {
        'anthropic-version': ANTHROPIC_VERSION,
        ...(this.options.apiKey ? { 'x-api-key': this.options.apiKey } : {}),
        ...(stream ? { accept: 'text/event-stream' } : {}),
      },
      body,
      signal: call.signal,
      timeouts: this.options.timeouts,
    });
  }

  async complete(call: UpstreamCall): Promise<Completion> {
    const upstream = await this.post(call, false);
    return fromAnthropicMessage(await readJson(upstream, call.signal), call);
  }

  async openStream(call: UpstreamCall): Promise<AsyncIterable<StreamItem>> {
    const upstream = await this.post(call, true);
    return anthropicStreamItems(parseSse(streamBody(upstream, call.signal, this.options.timeouts.idleTimeoutMs)), call);
  }
}

/** Google's Gemini API: `<baseUrl>/v1beta/models/<model>:generateContent` and `:streamGenerateContent?alt=sse`. */
export class GeminiProvider implements Provider {
  readonly kind = 'google' as const;
  readonly label = 'Google Gemini';
  constructor(private readonly options: { baseUrl: string; apiKey: string | undefined; timeouts: UpstreamTimeouts }) {}

  private post(call: UpstreamCall, stream: boolean) {
    const body = toGeminiBody(call);
    const method = stream ? 'streamGenerateContent?alt=sse' : 'generateContent';
    return postUpstream(
      `${trimSlash(this.options.baseUrl)}/v1beta/models/${encodeURIComponent(call.upstreamModel)}:${method}`,
      {
        headers: {
          ...(this.options.apiKey ? { 'x-goog-api-key': this.options.apiKey } : {}),
          ...(stream ? { accept: 'text/event-stream' } : {}),
        },
        body,
        signal: call.signal,
        timeouts: this.options.timeouts,
      },
    );
  }

  async complete(call: UpstreamCall): Promise<Completion> {
    const upstream = await this.post(call, false);
    return fromGeminiResponse(await readJson(upstream, call.signal), call);
  }

  async openStream(call: UpstreamCall): Promise<AsyncIterable<StreamItem>> {
    const upstream = await this.post(call, true);
    return geminiStreamItems(parseSse(streamBody(upstream, call.signal, this.options.timeouts.idleTimeoutMs)), call);
  }
}
