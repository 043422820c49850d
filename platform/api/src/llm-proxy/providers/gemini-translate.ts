import type { FinishReason, ToolCall } from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { providerUsage } from './anthropic-translate.js';
import {
  contentText,
  parseDataUrl,
  parseToolArguments,
  refuseOpenAIOnly,
  stopList,
  systemText,
  withToolCalls,
} from './common.js';
import { providerErrorMessage } from './http.js';
import {
  type Completion,
  ProviderError,
  type ProviderUsage,
  type StreamItem,
  UnsupportedByProvider,
  type UpstreamCall,
  type UpstreamChunk,
} from './types.js';

/**
 * OpenAI chat format ⇄ Google Gemini generateContent / streamGenerateContent (pure functions).
 *
 * Request: system and developer messages become `systemInstruction`; user text and data: images become
 * `user` parts (text, inlineData); an assistant's text and tool_calls become `model` parts (text,
 * functionCall with parsed args); a `tool` message becomes a `functionResponse` part named after the call it
 * answers (Gemini matches results by name); consecutive turns of one role are merged; tools become
 * `functionDeclarations` (their JSON Schema as `parametersJsonSchema`); tool_choice none/auto/required/function
 * becomes functionCallingConfig NONE/AUTO/ANY/ANY+allowedFunctionNames; max_tokens, temperature, top_p, stop,
 * penalties, seed and JSON response formats go into `generationConfig`.
 * Response: text parts (not thoughts) join into `content`, functionCall parts become tool_calls (Gemini has
 * no call ids unless it sends one: the proxy makes them unique per completion), finishReason maps to
 * finish_reason, usage is promptTokenCount (+ tool-use prompt) and candidates + thoughts tokens — Google
 * bills thinking as output. Streams send whole parts per event and cumulative usageMetadata.
 */

type GeminiPart =
  | { text: string }
  | { inlineData: { mimeType: string; data: string } }
  | { functionCall: { name: string; args: Record<string, unknown> } }
  | { functionResponse: { name: string; response: Record<string, unknown> } };

interface GeminiContent {
  role: 'user' | 'model';
  parts: GeminiPart[];
}

const PROVIDER = 'Gemini';

export function toGeminiBody(call: UpstreamCall): Record<string, unknown> {
  const { request } = call;
  refuseOpenAIOnly(request, PROVIDER);
  const toolNames = new Map<string, string>();
  const contents: GeminiContent[] = [];
  const push = (role: GeminiContent['role'], parts: GeminiPart[]) => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const [i, message] of request.messages.entries()) {
    switch (message.role) {
      case 'system':
      case 'developer':
        break;
      case 'user': {
        if (typeof message.content === 'string') {
          push('user', [{ text: message.content }]);
          break;
        }
        const parts: GeminiPart[] = [];
        message.content.forEach((part, j) => {
          if (part.type === 'text') {
            if (part.text !== '') parts.push({ text: part.text });
            return;
          }
          const data = parseDataUrl(part.image_url.url);
          if (!data) {
            throw new UnsupportedByProvider(
              `messages[${i}].content[${j}].image_url.url`,
              `messages[${i}].content[${j}].image_url.url: ${PROVIDER} models take images as data: URLs`,
            );
          }
          parts.push({ inlineData: { mimeType: data.mediaType, data: data.data } });
        });
        push('user', parts);
        break;
      }
      case 'assistant': {
        const parts: GeminiPart[] = [];
        const text =
          typeof message.content === 'string' ? message.content : (message.content ?? []).map((p) => p.text).join('');
        if (text !== '') parts.push({ text });
        message.tool_calls?.forEach((toolCall, j) => {
          toolNames.set(toolCall.id, toolCall.function.name);
          parts.push({
            functionCall: {
              name: toolCall.function.name,
              args: parseToolArguments(
                toolCall.function.arguments,
                `messages[${i}].tool_calls[${j}].function.arguments`,
                PROVIDER,
              ),
            },
          });
        });
        push('model', parts);
        break;
      }
      case 'tool': {
        const text = contentText(message.content);
        // The schema guarantees an earlier call with this id (openai-schema.ts).
        const name = toolNames.get(message.tool_call_id) ?? message.tool_call_id;
        push('user', [{ functionResponse: { name, response: toolResponse(text) } }]);
        break;
      }
    }
  }

  const generationConfig: Record<string, unknown> = { maxOutputTokens: call.maxTokens };
  if (request.temperature != null) generationConfig.temperature = request.temperature;
  if (request.top_p != null) generationConfig.topP = request.top_p;
  const stop = stopList(request.stop);
  if (stop) generationConfig.stopSequences = stop;
  if (request.presence_penalty != null) generationConfig.presencePenalty = request.presence_penalty;
  if (request.frequency_penalty != null) generationConfig.frequencyPenalty = request.frequency_penalty;
  if (request.seed != null) generationConfig.seed = request.seed;
  if (request.response_format?.type === 'json_object') generationConfig.responseMimeType = 'application/json';
  if (request.response_format?.type === 'json_schema') {
    generationConfig.responseMimeType = 'application/json';
    if (request.response_format.json_schema.schema) {
      generationConfig.responseJsonSchema = request.response_format.json_schema.schema;
    }
  }

  const body: Record<string, unknown> = { contents, generationConfig };
  const system = systemText(request);
  if (system) body.systemInstruction = { parts: [{ text: system }] };
  if (request.tools?.length) {
    body.tools = [
      {
        functionDeclarations: request.tools.map((tool) => ({
          name: tool.function.name,
          ...(tool.function.description ? { description: tool.function.description } : {}),
          ...(tool.function.parameters ? { parametersJsonSchema: tool.function.parameters } : {}),
        })),
      },
    ];
    const choice = request.tool_choice;
    if (choice !== undefined) {
      body.toolConfig = {
        functionCallingConfig:
          choice === 'none'
            ? { mode: 'NONE' }
            : choice === 'auto'
              ? { mode: 'AUTO' }
              : choice === 'required'
                ? { mode: 'ANY' }
                : { mode: 'ANY', allowedFunctionNames: [choice.function.name] },
      };
    }
  }
  return body;
}

/** functionResponse.response must be an object: a JSON object result as it is, anything else wrapped. */
function toolResponse(text: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // plain text
  }
  return { content: text };
}

export function finishFromGemini(reason: string | undefined): FinishReason | null {
  switch (reason) {
    case undefined:
    case 'FINISH_REASON_UNSPECIFIED':
      return null;
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
      return 'content_filter';
    default:
      return 'stop'; // STOP, and the reasons that end a turn without a filter (OTHER, MALFORMED_FUNCTION_CALL, …)
  }
}

interface GeminiUsage {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
  toolUsePromptTokenCount?: number;
}

const count = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.trunc(n) : 0);

export function usageFromGemini(usage: GeminiUsage | undefined): ProviderUsage | undefined {
  if (!usage || typeof usage !== 'object') return undefined;
  return providerUsage(
    count(usage.promptTokenCount) + count(usage.toolUsePromptTokenCount),
    count(usage.candidatesTokenCount) + count(usage.thoughtsTokenCount),
  );
}

interface GeminiResponse {
  candidates?: {
    content?: {
      parts?: { text?: string; thought?: boolean; functionCall?: { id?: string; name?: string; args?: unknown } }[];
    };
    finishReason?: string;
  }[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsage;
  error?: unknown;
}

/** Gemini has no tool-call ids: unique ones per completion, stable for a given completion id. */
export const geminiToolCallId = (completionId: string, index: number) =>
  `call_${completionId.replace(/^chatcmpl-/, '').slice(-16)}_${index}`;

function readParts(response: GeminiResponse, call: UpstreamCall, firstToolIndex: number) {
  const candidate = response.candidates?.[0];
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const part of candidate?.content?.parts ?? []) {
    if (typeof part.text === 'string' && !part.thought) text += part.text;
    if (part.functionCall?.name) {
      const index = firstToolIndex + toolCalls.length;
      toolCalls.push({
        id: part.functionCall.id || geminiToolCallId(call.id, index),
        type: 'function',
        function: { name: part.functionCall.name, arguments: JSON.stringify(part.functionCall.args ?? {}) },
      });
    }
  }
  const blocked = !candidate && response.promptFeedback?.blockReason ? 'content_filter' : null;
  return { text, toolCalls, finish: blocked ?? finishFromGemini(candidate?.finishReason) };
}

export function fromGeminiResponse(json: unknown, call: UpstreamCall): Completion {
  const response = json as GeminiResponse | null;
  if (!response || typeof response !== 'object' || (!response.candidates && !response.promptFeedback)) {
    throw new ProviderError(502, 'the model provider sent a response without candidates');
  }
  const { text, toolCalls, finish } = readParts(response, call, 0);
  const usage = usageFromGemini(response.usageMetadata);
  return {
    body: {
      id: call.id,
      object: 'chat.completion',
      created: call.created,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: text === '' && toolCalls.length > 0 ? null : text,
            ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
            refusal: null,
          },
          finish_reason: withToolCalls(finish ?? 'stop', toolCalls.length > 0),
          logprobs: null,
        },
      ],
      ...(usage ? { usage: usage.openai } : {}),
    },
    usage,
  };
}

/** OpenAI chunks and usage from a Gemini `streamGenerateContent?alt=sse` stream. */
export async function* geminiStreamItems(
  events: AsyncIterable<SseEvent>,
  call: UpstreamCall,
): AsyncGenerator<StreamItem> {
  const chunk = (delta: UpstreamChunk['choices'][number]['delta'], finish: FinishReason | null = null) => ({
    type: 'chunk' as const,
    chunk: {
      id: call.id,
      object: 'chat.completion.chunk' as const,
      created: call.created,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    },
  });
  let started = false;
  let toolCount = 0;
  let finished = false;
  for await (const event of events) {
    let response: GeminiResponse;
    try {
      response = JSON.parse(event.data);
    } catch {
      throw new ProviderError(502, 'the model provider sent a stream event that is not JSON', { afterOutput: true });
    }
    if (response.error) {
      throw new ProviderError(502, providerErrorMessage(JSON.stringify({ error: response.error })), {
        afterOutput: true,
      });
    }
    if (!started) {
      started = true;
      yield chunk({ role: 'assistant', content: '' });
    }
    const usage = usageFromGemini(response.usageMetadata);
    if (usage) yield { type: 'usage', usage };
    const { text, toolCalls, finish } = readParts(response, call, toolCount);
    if (text) yield chunk({ content: text });
    if (toolCalls.length) {
      yield chunk({
        tool_calls: toolCalls.map((toolCall, i) => ({
          index: toolCount + i,
          id: toolCall.id,
          type: 'function' as const,
          function: { name: toolCall.function.name, arguments: toolCall.function.arguments },
        })),
      });
      toolCount += toolCalls.length;
    }
    if (finish && !finished) {
      finished = true;
      yield chunk({}, withToolCalls(finish, toolCount > 0));
    }
  }
  if (!finished) {
    throw new ProviderError(502, 'the model provider ended the stream before the answer was complete', {
      afterOutput: true,
    });
  }
}
