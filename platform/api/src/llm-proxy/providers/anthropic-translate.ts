import type { FinishReason, ToolCall } from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { contentText, parseDataUrl, parseToolArguments, refuseOpenAIOnly, stopList, systemText } from './common.js';
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
 * OpenAI chat format ⇄ Anthropic Messages API (pure functions; the transport is in anthropic.ts).
 *
 * Request: system and developer messages become `system`; user content parts become text and image blocks;
 * an assistant's tool_calls become `tool_use` blocks (arguments parsed to objects); `tool` messages become
 * `tool_result` blocks in a user turn; consecutive turns of one role are merged (Anthropic wants them to
 * alternate); tools become `input_schema` tools; tool_choice none/auto/required/function becomes
 * none/auto/any/tool and parallel_tool_calls=false becomes disable_parallel_tool_use.
 * Response: text blocks join into `content`, tool_use blocks become tool_calls, stop_reason maps to
 * finish_reason, and usage is input (incl. cache reads/writes) and output tokens. Streams: message_start →
 * role chunk and input usage, text_delta → content, tool_use start + input_json_delta → tool_call deltas,
 * message_delta → finish_reason and the final (cumulative) output usage.
 */

type AnthropicBlock =
  | { type: 'text'; text: string }
  | {
      type: 'image';
      source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string };
    }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | { type: 'tool_result'; tool_use_id: string; content: string };

interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: AnthropicBlock[];
}

const PROVIDER = 'Anthropic';

export function toAnthropicBody(call: UpstreamCall, stream: boolean): Record<string, unknown> {
  const { request } = call;
  refuseOpenAIOnly(request, PROVIDER, ['presence_penalty', 'frequency_penalty']);
  if (request.response_format && request.response_format.type !== 'text') {
    throw new UnsupportedByProvider(
      'response_format',
      `response_format: ${request.response_format.type} is not supported by ${PROVIDER} models`,
    );
  }
  if (request.temperature != null && request.temperature > 1) {
    throw new UnsupportedByProvider('temperature', `temperature: ${PROVIDER} models take 0 to 1`);
  }

  const messages: AnthropicMessage[] = [];
  const push = (role: AnthropicMessage['role'], blocks: AnthropicBlock[]) => {
    if (blocks.length === 0) return;
    const last = messages.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const [i, message] of request.messages.entries()) {
    switch (message.role) {
      case 'system':
      case 'developer':
        break;
      case 'user': {
        if (typeof message.content === 'string') {
          push('user', [{ type: 'text', text: message.content }]);
          break;
        }
        const blocks: AnthropicBlock[] = [];
        message.content.forEach((part, j) => {
          if (part.type === 'text') {
            if (part.text !== '') blocks.push({ type: 'text', text: part.text });
            return;
          }
          const data = parseDataUrl(part.image_url.url);
          if (data)
            blocks.push({ type: 'image', source: { type: 'base64', media_type: data.mediaType, data: data.data } });
          else if (/^https:\/\//i.test(part.image_url.url)) {
            blocks.push({ type: 'image', source: { type: 'url', url: part.image_url.url } });
          } else {
            throw new UnsupportedByProvider(
              `messages[${i}].content[${j}].image_url.url`,
              `messages[${i}].content[${j}].image_url.url: ${PROVIDER} models take images as data: or https: URLs`,
            );
          }
        });
        push('user', blocks);
        break;
      }
      case 'assistant': {
        const blocks: AnthropicBlock[] = [];
        const text =
          typeof message.content === 'string' ? message.content : (message.content ?? []).map((p) => p.text).join('');
        if (text !== '') blocks.push({ type: 'text', text });
        message.tool_calls?.forEach((toolCall, j) => {
          blocks.push({
            type: 'tool_use',
            id: toolCall.id,
            name: toolCall.function.name,
            input: parseToolArguments(
              toolCall.function.arguments,
              `messages[${i}].tool_calls[${j}].function.arguments`,
              PROVIDER,
            ),
          });
        });
        push('assistant', blocks);
        break;
      }
      case 'tool': {
        const content = contentText(message.content);
        push('user', [{ type: 'tool_result', tool_use_id: message.tool_call_id, content }]);
        break;
      }
    }
  }

  const body: Record<string, unknown> = {
    model: call.upstreamModel,
    max_tokens: call.maxTokens,
    messages,
  };
  const system = systemText(request);
  if (system) body.system = system;
  if (request.temperature != null) body.temperature = request.temperature;
  if (request.top_p != null) body.top_p = request.top_p;
  const stop = stopList(request.stop);
  if (stop) body.stop_sequences = stop;
  if (request.user) body.metadata = { user_id: request.user };
  if (request.tools?.length) {
    body.tools = request.tools.map((tool) => ({
      name: tool.function.name,
      ...(tool.function.description ? { description: tool.function.description } : {}),
      input_schema: { type: 'object', ...(tool.function.parameters ?? { properties: {} }) },
    }));
  }
  const choice = toolChoice(request.tool_choice, request.parallel_tool_calls);
  if (choice && request.tools?.length) body.tool_choice = choice;
  if (stream) body.stream = true;
  return body;
}

function toolChoice(
  choice: UpstreamCall['request']['tool_choice'],
  parallel: boolean | undefined,
): Record<string, unknown> | undefined {
  const noParallel = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined) return parallel === false ? { type: 'auto', ...noParallel } : undefined;
  if (choice === 'none') return { type: 'none' };
  if (choice === 'auto') return { type: 'auto', ...noParallel };
  if (choice === 'required') return { type: 'any', ...noParallel };
  return { type: 'tool', name: choice.function.name, ...noParallel };
}

export function finishFromAnthropic(reason: string | null | undefined): FinishReason | null {
  switch (reason) {
    case undefined:
    case null:
      return null;
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'stop'; // end_turn, stop_sequence, pause_turn
  }
}

interface AnthropicUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

const count = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.trunc(n) : 0);

/** Input tokens are the uncached input plus cache writes and reads (Anthropic reports them apart). */
export function anthropicInputTokens(usage: AnthropicUsage | undefined): number | undefined {
  if (!usage || typeof usage.input_tokens !== 'number') return undefined;
  return count(usage.input_tokens) + count(usage.cache_creation_input_tokens) + count(usage.cache_read_input_tokens);
}

export function providerUsage(inputTokens: number, outputTokens: number): ProviderUsage {
  return {
    inputTokens,
    outputTokens,
    openai: { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
  };
}

interface AnthropicResponse {
  type?: string;
  content?: { type: string; text?: string; id?: string; name?: string; input?: unknown }[];
  stop_reason?: string | null;
  usage?: AnthropicUsage;
}

export function fromAnthropicMessage(json: unknown, call: UpstreamCall): Completion {
  const message = json as AnthropicResponse | null;
  if (!message || typeof message !== 'object' || !Array.isArray(message.content)) {
    throw new ProviderError(502, 'the model provider sent a message without content');
  }
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text' && typeof block.text === 'string') text += block.text;
    if (block.type === 'tool_use' && block.id && block.name) {
      toolCalls.push({
        id: block.id,
        type: 'function',
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  const input = anthropicInputTokens(message.usage);
  const usage =
    input !== undefined && typeof message.usage?.output_tokens === 'number'
      ? providerUsage(input, count(message.usage.output_tokens))
      : undefined;
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
          finish_reason: finishFromAnthropic(message.stop_reason) ?? 'stop',
          logprobs: null,
        },
      ],
      ...(usage ? { usage: usage.openai } : {}),
    },
    usage,
  };
}

/** OpenAI chunks and usage from an Anthropic Messages event stream. */
export async function* anthropicStreamItems(
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
  let inputTokens: number | undefined;
  let outputTokens = 0;
  let toolCount = 0;
  let finished = false;
  // Content block index → what it is (tool calls are numbered separately, as OpenAI numbers them).
  const blocks = new Map<number, { kind: 'text' } | { kind: 'tool'; toolIndex: number; sentArguments: boolean }>();

  for await (const event of events) {
    let data: {
      type?: string;
      message?: { usage?: AnthropicUsage };
      index?: number;
      content_block?: { type?: string; text?: string; id?: string; name?: string };
      delta?: { type?: string; text?: string; partial_json?: string; stop_reason?: string | null };
      usage?: AnthropicUsage;
      error?: { type?: string; message?: string };
    };
    try {
      data = JSON.parse(event.data);
    } catch {
      throw new ProviderError(502, 'the model provider sent a stream event that is not JSON', { afterOutput: true });
    }
    switch (data.type ?? event.event) {
      case 'message_start': {
        const usage = data.message?.usage;
        inputTokens = anthropicInputTokens(usage);
        outputTokens = count(usage?.output_tokens);
        if (inputTokens !== undefined) yield { type: 'usage', usage: providerUsage(inputTokens, outputTokens) };
        yield chunk({ role: 'assistant', content: '' });
        break;
      }
      case 'content_block_start': {
        const block = data.content_block;
        const index = data.index ?? 0;
        if (block?.type === 'text') {
          blocks.set(index, { kind: 'text' });
          if (block.text) yield chunk({ content: block.text });
        } else if (block?.type === 'tool_use') {
          const toolIndex = toolCount++;
          blocks.set(index, { kind: 'tool', toolIndex, sentArguments: false });
          yield chunk({
            tool_calls: [
              {
                index: toolIndex,
                id: block.id ?? '',
                type: 'function',
                function: { name: block.name ?? '', arguments: '' },
              },
            ],
          });
        }
        break;
      }
      case 'content_block_delta': {
        const block = blocks.get(data.index ?? 0);
        const delta = data.delta;
        if (block?.kind === 'text' && delta?.type === 'text_delta' && delta.text) {
          yield chunk({ content: delta.text });
        } else if (block?.kind === 'tool' && delta?.type === 'input_json_delta' && delta.partial_json) {
          block.sentArguments = true;
          yield chunk({ tool_calls: [{ index: block.toolIndex, function: { arguments: delta.partial_json } }] });
        }
        break;
      }
      case 'content_block_stop': {
        const block = blocks.get(data.index ?? 0);
        // A tool called without arguments streams none: OpenAI clients expect a JSON text.
        if (block?.kind === 'tool' && !block.sentArguments) {
          yield chunk({ tool_calls: [{ index: block.toolIndex, function: { arguments: '{}' } }] });
        }
        break;
      }
      case 'message_delta': {
        // message_delta usage is cumulative; newer API versions repeat the input counts there too.
        const usage = data.usage;
        if (usage && typeof usage.output_tokens === 'number') outputTokens = count(usage.output_tokens);
        const input = anthropicInputTokens(usage);
        if (input !== undefined) inputTokens = input;
        if (inputTokens !== undefined) yield { type: 'usage', usage: providerUsage(inputTokens, outputTokens) };
        const finish = finishFromAnthropic(data.delta?.stop_reason);
        if (finish) {
          finished = true;
          yield chunk({}, finish);
        }
        break;
      }
      case 'message_stop':
        if (!finished) throw incomplete();
        return;
      case 'error': {
        const status = data.error?.type === 'overloaded_error' ? 529 : 502;
        throw new ProviderError(status, providerErrorMessage(JSON.stringify({ error: data.error ?? {} })), {
          afterOutput: true,
        });
      }
      default:
        break; // ping, and event types added later
    }
  }
  if (!finished) throw incomplete();
}

const incomplete = () =>
  new ProviderError(502, 'the model provider ended the stream before the message was complete', { afterOutput: true });
