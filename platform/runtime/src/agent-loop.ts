import type { Logger } from '@agentstack/core';
import OpenAI from 'openai';
import type {
  ChatCompletionContentPart,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import type { ResolvedAttachment } from './attachments.js';
import type { ChatEvent, ChatEventOf, ChatMessage, ErrorCode, FinishReason, ToolCall, Usage } from './events.js';
import type { Hand } from './hands.js';
import { runTool, type ToolContext, type ToolRegistry } from './tools/registry.js';

/** Why a run was aborted from outside; the loop reports a cancel but stays silent for a hang-up. */
export class RunCancelled extends Error {
  override name = 'RunCancelled';
}
export class ClientDisconnected extends Error {
  override name = 'ClientDisconnected';
}

/** Characters of a tool result shown in the `tool_result` event (the model gets more). */
export const DISPLAY_OUTPUT_CHARS = 4_000;

export interface AgentDeps {
  llm: OpenAI;
  tools: ToolRegistry;
  /** Everything a tool needs except its per-call signal and time budget. */
  toolContext: Omit<ToolContext, 'signal' | 'timeoutMs'>;
  log: Logger;
  now?: () => Date;
}

export interface AgentRun {
  hand: Hand;
  model: string;
  /** The platform's conversation id: the LLM proxy records it on the call's usage row. */
  conversationId?: string;
  /** Prior conversation, oldest first, as the platform stored it. */
  history: ChatMessage[];
  message: { content: string; attachments: ResolvedAttachment[] };
  signal: AbortSignal;
}

type LlmMessage = ChatCompletionMessageParam;

/**
 * One agent run: call the model, stream its text, run the tools it asks for, feed the results back, until
 * it answers without tools or a limit stops it. Yields the run's events in order; the last one is `done`
 * or `error`, except after a client hang-up, when nobody is listening and the generator just ends.
 */
export async function* runAgent(deps: AgentDeps, run: AgentRun): AsyncGenerator<ChatEvent> {
  const { hand, signal } = run;
  const newMessages: ChatMessage[] = [];
  const usage: Usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  let iterations = 0;
  const llmMessages = buildLlmMessages(deps, run);
  const toolDefinitions = deps.tools.definitions(hand.tools) as ChatCompletionTool[];
  const repeats = new RepeatDetector(hand.settings.maxRepeatedToolCalls);
  let open: { calls: ToolCall[]; done: Set<string> } | undefined;

  const done = (finishReason: FinishReason, notice?: string): ChatEventOf<'done'> => ({
    type: 'done',
    finishReason,
    ...(notice ? { notice } : {}),
    usage: { ...usage },
    iterations,
    model: run.model,
    newMessages,
  });
  /** Gives every tool call of the last assistant message a result, so the stored history stays valid. */
  function* closeOpenCalls(reason: string): Generator<ChatEvent> {
    if (!open) return;
    for (const call of open.calls) {
      if (open.done.has(call.id)) continue;
      open.done.add(call.id);
      newMessages.push({ role: 'tool', toolCallId: call.id, name: call.name, content: reason, isError: true });
      yield toolResultEvent(call, { output: reason, isError: true, ms: 0 });
    }
    open = undefined;
  }

  let partialText = '';
  try {
    for (;;) {
      if (iterations >= hand.settings.maxIterations) {
        yield done(
          'max_iterations',
          `Stopped after ${iterations} model calls, the limit of the ${hand.name} Hand (max_iterations). ` +
            'Send another message to let the agent continue.',
        );
        return;
      }
      iterations += 1;
      const stream = await deps.llm.chat.completions.create(
        {
          model: run.model,
          messages: llmMessages,
          stream: true,
          stream_options: { include_usage: true },
          ...(toolDefinitions.length > 0 ? { tools: toolDefinitions } : {}),
          ...(hand.settings.temperature !== undefined ? { temperature: hand.settings.temperature } : {}),
        },
        {
          signal,
          // Only platform ids (cnv_…): the proxy refuses a conversation that is not the tenant's.
          ...(run.conversationId?.startsWith('cnv_')
            ? { headers: { 'x-agentsquads-conversation-id': run.conversationId } }
            : {}),
        },
      );

      partialText = '';
      const pending = new Map<number, { id: string; name: string; arguments: string }>();
      let finish: string | null = null;
      for await (const chunk of stream) {
        if (chunk.usage) {
          usage.promptTokens += chunk.usage.prompt_tokens ?? 0;
          usage.completionTokens += chunk.usage.completion_tokens ?? 0;
          usage.totalTokens += chunk.usage.total_tokens ?? 0;
        }
        const choice = chunk.choices[0];
        if (!choice) continue;
        const delta = choice.delta;
        if (delta?.content) {
          partialText += delta.content;
          yield { type: 'text', delta: delta.content };
        }
        for (const part of delta?.tool_calls ?? []) {
          const call = pending.get(part.index) ?? { id: '', name: '', arguments: '' };
          if (part.id) call.id = part.id;
          if (part.function?.name) call.name += part.function.name;
          if (part.function?.arguments) call.arguments += part.function.arguments;
          pending.set(part.index, call);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      // The SDK ends the stream quietly when it is aborted; a cut-off answer must not pass as complete.
      if (signal.aborted) throw signal.reason;

      const calls: ToolCall[] = [...pending.entries()]
        .sort(([a], [b]) => a - b)
        .map(([index, c]) => ({ id: c.id || `call_${iterations}_${index}`, name: c.name, arguments: c.arguments }));
      const assistant: ChatMessage = {
        role: 'assistant',
        content: partialText === '' ? null : partialText,
        ...(calls.length > 0 ? { toolCalls: calls } : {}),
      };
      partialText = '';
      newMessages.push(assistant);
      llmMessages.push(toLlmMessage(assistant));
      if (calls.length === 0) {
        yield done(finish === 'length' ? 'length' : finish === 'content_filter' ? 'content_filter' : 'stop');
        return;
      }

      open = { calls, done: new Set() };
      for (const call of calls) {
        yield { type: 'tool_call', id: call.id, name: call.name, arguments: call.arguments };
        if (repeats.isLoop(call)) {
          const times = hand.settings.maxRepeatedToolCalls;
          const notice =
            `Stopped: the agent asked for ${call.name} with the same arguments ${times} times in a row, ` +
            'so it looks stuck in a loop. Rephrase the request or give it more information.';
          yield* closeOpenCalls(`not run: ${call.name} was requested with identical arguments ${times} times in a row`);
          yield done('loop_detected', notice);
          return;
        }
        const result = await executeCall(deps, run, call);
        open.done.add(call.id);
        const message: ChatMessage = {
          role: 'tool',
          toolCallId: call.id,
          name: call.name,
          content: result.output,
          ...(result.isError ? { isError: true } : {}),
        };
        newMessages.push(message);
        llmMessages.push(toLlmMessage(message));
        yield toolResultEvent(call, result);
      }
      open = undefined;
    }
  } catch (err) {
    if (signal.aborted) {
      if (!(signal.reason instanceof RunCancelled)) return; // hung up: nobody to tell
      if (partialText) newMessages.push({ role: 'assistant', content: partialText });
      yield* closeOpenCalls('cancelled by the user before it finished');
      yield done('cancelled', 'Stopped by the user.');
      return;
    }
    yield* closeOpenCalls('not run: the run failed');
    if (partialText) newMessages.push({ role: 'assistant', content: partialText });
    const mapped = mapLlmError(err);
    if (mapped.code === 'internal_error') deps.log.error({ err }, 'agent run failed');
    else deps.log.warn({ code: mapped.code, status: mapped.status, message: mapped.message }, 'LLM call failed');
    yield { type: 'error', ...mapped, usage: { ...usage }, iterations, newMessages };
  }
}

async function executeCall(deps: AgentDeps, run: AgentRun, call: ToolCall) {
  const tool = deps.tools.get(call.name);
  if (!tool || !run.hand.tools.includes(call.name)) {
    const allowed = run.hand.tools.length > 0 ? run.hand.tools.join(', ') : 'none';
    const what = tool ? `is not available to the ${run.hand.name} Hand` : 'does not exist';
    return { output: `tool "${call.name}" ${what} (allowed tools: ${allowed})`, isError: true, ms: 0 };
  }
  return runTool(tool, call.arguments, deps.toolContext, {
    signal: run.signal,
    timeoutMs: run.hand.settings.toolTimeoutSeconds * 1000,
  });
}

function toolResultEvent(call: ToolCall, result: { output: string; isError: boolean; ms: number }): ChatEvent {
  const truncated = result.output.length > DISPLAY_OUTPUT_CHARS;
  return {
    type: 'tool_result',
    id: call.id,
    name: call.name,
    output: truncated ? `${result.output.slice(0, DISPLAY_OUTPUT_CHARS)}…` : result.output,
    truncated,
    outputChars: result.output.length,
    isError: result.isError,
    ms: result.ms,
  };
}

/** Counts identical consecutive tool calls (same name, same arguments after canonical JSON ordering). */
class RepeatDetector {
  #last: string | undefined;
  #count = 0;
  constructor(private readonly limit: number) {}

  /** Records the call; true when it is the `limit`-th identical call in a row (it must not run). */
  isLoop(call: ToolCall): boolean {
    const key = `${call.name}\u0000${canonicalJson(call.arguments)}`;
    this.#count = key === this.#last ? this.#count + 1 : 1;
    this.#last = key;
    return this.#count >= this.limit;
  }
}

function canonicalJson(text: string): string {
  try {
    return JSON.stringify(sortKeys(JSON.parse(text)));
  } catch {
    return text.trim();
  }
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

function buildLlmMessages(deps: AgentDeps, run: AgentRun): LlmMessage[] {
  const date = (deps.now?.() ?? new Date()).toISOString().slice(0, 10);
  const tools = run.hand.tools.length > 0 ? run.hand.tools.join(', ') : 'none';
  const system =
    `${run.hand.systemPrompt}\n\n## Environment\n` +
    `- Workspace: ${deps.toolContext.workspace} (persistent; file tool paths are relative to it)\n` +
    `- Tools: ${tools}\n- Today: ${date} (UTC)`;
  return [
    { role: 'system', content: system },
    ...repairToolPairs(run.history).map(toLlmMessage),
    userMessage(run.message),
  ];
}

function attachmentNote(attachments: readonly { path: string; note?: string }[]): string {
  if (attachments.length === 0) return '';
  const lines = attachments.map((a) => `- ${a.path}${a.note ? ` (${a.note})` : ''}`);
  return `\n\n[Attached files, in the workspace:\n${lines.join('\n')}]`;
}

function userMessage(message: AgentRun['message']): LlmMessage {
  const text = message.content + attachmentNote(message.attachments);
  const images = message.attachments.filter((a) => a.imageDataUrl);
  if (images.length === 0) return { role: 'user', content: text };
  const parts: ChatCompletionContentPart[] = [
    { type: 'text', text },
    ...images.map((a) => ({ type: 'image_url' as const, image_url: { url: a.imageDataUrl! } })),
  ];
  return { role: 'user', content: parts };
}

function toLlmMessage(message: ChatMessage): LlmMessage {
  switch (message.role) {
    case 'system':
      return { role: 'system', content: message.content };
    case 'user':
      return { role: 'user', content: message.content + attachmentNote(message.attachments ?? []) };
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls && message.toolCalls.length > 0
          ? {
              tool_calls: message.toolCalls.map((c) => ({
                id: c.id,
                type: 'function' as const,
                function: { name: c.name, arguments: c.arguments },
              })),
            }
          : {}),
      };
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
  }
}

/**
 * Providers reject a history where a tool call has no result or a result has no call. Stored histories can
 * end up that way (a crash between two writes); fill in the gaps instead of failing every later message.
 */
export function repairToolPairs(history: readonly ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  let waiting: ToolCall[] = [];
  const flush = () => {
    for (const call of waiting) {
      out.push({
        role: 'tool',
        toolCallId: call.id,
        name: call.name,
        content: '(no result was recorded)',
        isError: true,
      });
    }
    waiting = [];
  };
  for (const message of history) {
    if (message.role === 'tool') {
      const index = waiting.findIndex((c) => c.id === message.toolCallId);
      if (index === -1) continue; // a result without its call
      waiting.splice(index, 1);
      out.push(message);
      continue;
    }
    flush();
    out.push(message);
    if (message.role === 'assistant') waiting = [...(message.toolCalls ?? [])];
  }
  flush();
  return out;
}

/** Maps an LLM proxy failure to an `error` event, keeping the upstream's own message. */
export function mapLlmError(err: unknown): { code: ErrorCode; message: string; status?: number } {
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    const status = err.status;
    const body = err.error as { message?: unknown } | undefined;
    const upstream = typeof body?.message === 'string' ? body.message : err.message;
    const code: ErrorCode =
      status === 402
        ? 'credits_exhausted'
        : status === 429
          ? 'llm_rate_limited'
          : status === 401 || status === 403
            ? 'llm_unauthorized'
            : status >= 500
              ? 'llm_unavailable'
              : 'llm_bad_request';
    return { code, message: upstream, status };
  }
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    return { code: 'llm_unavailable', message: 'the LLM proxy did not answer in time' };
  }
  if (err instanceof OpenAI.APIConnectionError) {
    const cause = (err as { cause?: Error }).cause;
    return { code: 'llm_unavailable', message: `could not reach the LLM proxy${cause ? `: ${cause.message}` : ''}` };
  }
  if (err instanceof OpenAI.APIError) {
    return { code: 'llm_unavailable', message: err.message };
  }
  return { code: 'internal_error', message: 'the agent run failed unexpectedly' };
}
