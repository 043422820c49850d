import { z } from 'zod';

/**
 * The OpenAI Chat Completions request the proxy accepts (the subset every provider behind it can honour,
 * plus OpenAI-only knobs that are forwarded to OpenAI and refused for others). Unknown fields are dropped.
 */

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const imagePart = z.object({
  type: z.literal('image_url'),
  image_url: z.object({
    url: z
      .string()
      .min(1)
      .refine((url) => /^data:image\/[a-z0-9.+-]+;base64,/i.test(url) || /^https?:\/\//i.test(url), {
        message: 'expected a data:image/…;base64, URL or an http(s) URL',
      }),
    detail: z.enum(['auto', 'low', 'high']).optional(),
  }),
});
const userPart = z.discriminatedUnion('type', [textPart, imagePart]);

const name = z.string().min(1).max(64).optional();
const textContent = z.union([z.string(), z.array(textPart)]);

export const toolCallSchema = z.object({
  id: z.string().min(1).max(200),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1).max(64), arguments: z.string() }),
});

const systemMessage = z.object({ role: z.literal('system'), content: textContent, name });
const developerMessage = z.object({ role: z.literal('developer'), content: textContent, name });
const userMessage = z.object({ role: z.literal('user'), content: z.union([z.string(), z.array(userPart)]), name });
const assistantMessage = z
  .object({
    role: z.literal('assistant'),
    content: textContent.nullable().optional(),
    tool_calls: z.array(toolCallSchema).optional(),
    refusal: z.string().nullable().optional(),
    name,
  })
  .refine((m) => (m.content !== undefined && m.content !== null) || (m.tool_calls?.length ?? 0) > 0, {
    message: 'an assistant message needs content or tool_calls',
  });
const toolMessage = z.object({
  role: z.literal('tool'),
  tool_call_id: z.string().min(1).max(200),
  content: textContent,
});

export const messageSchema = z.discriminatedUnion('role', [
  systemMessage,
  developerMessage,
  userMessage,
  assistantMessage,
  toolMessage,
]);

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
export const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().regex(TOOL_NAME, 'letters, digits, _ and - only, at most 64'),
    description: z.string().max(10_000).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string().regex(TOOL_NAME) }) }),
]);

const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string().min(1).max(64),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

const positiveInt = z.number().int().min(1);

export const chatRequestSchema = z
  .object({
    model: z.string().min(1).max(100),
    messages: z.array(messageSchema).min(1, 'at least one message is required').max(10_000),
    stream: z.boolean().nullable().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    max_tokens: positiveInt.nullable().optional(),
    max_completion_tokens: positiveInt.nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    n: z.literal(1, { message: 'only n = 1 is supported (one choice per request)' }).nullable().optional(),
    stop: z
      .union([z.string(), z.array(z.string()).max(4)])
      .nullable()
      .optional(),
    presence_penalty: z.number().min(-2).max(2).nullable().optional(),
    frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
    seed: z.number().int().nullable().optional(),
    response_format: responseFormatSchema.optional(),
    tools: z.array(toolSchema).max(128).optional(),
    tool_choice: toolChoiceSchema.optional(),
    parallel_tool_calls: z.boolean().optional(),
    user: z.string().max(256).optional(),
    // OpenAI-only: forwarded to OpenAI-style upstreams, refused for the others.
    logit_bias: z.record(z.string(), z.number().min(-100).max(100)).nullable().optional(),
    logprobs: z.boolean().nullable().optional(),
    top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
    reasoning_effort: z.enum(['minimal', 'low', 'medium', 'high']).nullable().optional(),
  })
  .superRefine((req, ctx) => {
    // Every tool result must answer a tool call an earlier assistant message made (providers other than
    // OpenAI need the call to know the tool's name), and names of tools must be unique.
    const calls = new Set<string>();
    req.messages.forEach((message, index) => {
      if (message.role === 'assistant') for (const call of message.tool_calls ?? []) calls.add(call.id);
      if (message.role === 'tool' && !calls.has(message.tool_call_id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['messages', index, 'tool_call_id'],
          message: 'no earlier assistant message has a tool call with this id',
        });
      }
    });
    const names = new Set<string>();
    req.tools?.forEach((tool, index) => {
      if (names.has(tool.function.name)) {
        ctx.addIssue({ code: 'custom', path: ['tools', index, 'function', 'name'], message: 'duplicate tool name' });
      }
      names.add(tool.function.name);
    });
    const choice = req.tool_choice;
    if (typeof choice === 'object' && !names.has(choice.function.name)) {
      ctx.addIssue({ code: 'custom', path: ['tool_choice', 'function', 'name'], message: 'not one of the tools' });
    }
    if (choice !== undefined && choice !== 'none' && !req.tools?.length) {
      ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: 'tool_choice needs tools' });
    }
    if (req.stream_options && !req.stream) {
      ctx.addIssue({ code: 'custom', path: ['stream_options'], message: 'only allowed when stream is true' });
    }
  });

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type ChatMessage = ChatRequest['messages'][number];
export type ToolCall = z.infer<typeof toolCallSchema>;
export type Tool = z.infer<typeof toolSchema>;
export type UserContentPart = z.infer<typeof userPart>;

/** `['messages', 1, 'content']` → `messages[1].content` (OpenAI's `param` style). */
export function paramPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/** The text of a text-only content field. */
export function textOf(content: string | { text: string }[] | null | undefined): string {
  if (content == null) return '';
  return typeof content === 'string' ? content : content.map((part) => part.text).join('');
}

// ---- what the proxy sends back (the OpenAI wire shapes) ------------------------------------------------

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call';

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  [key: string]: unknown;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[]; refusal?: string | null };
    finish_reason: FinishReason | null;
    logprobs?: unknown;
  }[];
  usage?: OpenAIUsage;
  system_fingerprint?: string | null;
  service_tier?: string | null;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChunkChoice {
  index: number;
  delta: { role?: 'assistant'; content?: string | null; tool_calls?: ToolCallDelta[]; refusal?: string | null };
  finish_reason: FinishReason | null;
  logprobs?: unknown;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: ChunkChoice[];
  usage?: OpenAIUsage | null;
  system_fingerprint?: string | null;
  service_tier?: string | null;
}
