/**
 * The runtime's wire contract, shared with the platform API (which relays and persists it) and the web app
 * (which renders it). Only zod here, so it imports cleanly anywhere, browsers included.
 */
import { z } from 'zod';

/** A file the user attached, already placed in the tenant's workspace by the platform (path relative to it). */
export const attachmentSchema = z.object({
  path: z.string().min(1).max(1024),
});

/** One tool call as the model made it; `arguments` is the JSON text exactly as the model produced it. */
export const toolCallSchema = z.object({
  id: z.string().min(1).max(200),
  name: z.string().min(1).max(200),
  arguments: z.string().max(1_000_000),
});

/**
 * A conversation message as the platform stores it and hands it back as context. The runtime returns the
 * messages a run produced (assistant and tool messages) in `done.newMessages`, in exactly this shape.
 */
export const chatMessageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: z.string() }),
  z.object({ role: z.literal('user'), content: z.string(), attachments: z.array(attachmentSchema).max(20).optional() }),
  z.object({
    role: z.literal('assistant'),
    content: z.string().nullable(),
    toolCalls: z.array(toolCallSchema).max(128).optional(),
  }),
  z.object({
    role: z.literal('tool'),
    toolCallId: z.string().min(1),
    name: z.string().min(1),
    content: z.string(),
    isError: z.boolean().optional(),
  }),
]);

export const userMessageSchema = z.object({
  role: z.literal('user'),
  content: z.string().max(200_000),
  attachments: z.array(attachmentSchema).max(20).optional(),
});

/** Body of `POST /v1/chat`. */
export const chatRequestSchema = z.object({
  conversationId: z.string().min(1).max(200),
  /** Prior context, oldest first, as the platform stored it (earlier `newMessages` included). */
  messages: z.array(chatMessageSchema).max(2_000).default([]),
  message: userMessageSchema,
  /** Name of the Hand to run; the runtime's default Hand when absent. */
  hand: z.string().min(1).max(64).optional(),
  /** Model override; otherwise the Hand's model, otherwise the runtime default. */
  model: z.string().min(1).max(200).optional(),
});

export const usageSchema = z.object({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  totalTokens: z.number().int().nonnegative(),
});

export const finishReasonSchema = z.enum([
  /** The model answered and stopped. */
  'stop',
  /** The model hit its output token limit. */
  'length',
  /** The provider filtered the output. */
  'content_filter',
  /** The Hand's `max_iterations` model calls were used up while the model still wanted tools. */
  'max_iterations',
  /** The same tool with the same arguments was requested too many times in a row. */
  'loop_detected',
  /** `POST /v1/chat/:runId/cancel` stopped the run. */
  'cancelled',
]);

/** Error codes of the `error` event. Upstream (LLM proxy) failures keep the upstream message. */
export const errorCodeSchema = z.enum([
  'credits_exhausted',
  'llm_rate_limited',
  'llm_unauthorized',
  'llm_bad_request',
  'llm_unavailable',
  'internal_error',
]);

export const chatEventSchema = z.discriminatedUnion('type', [
  /** First event of every run. */
  z.object({
    type: z.literal('start'),
    runId: z.string(),
    conversationId: z.string(),
    hand: z.string(),
    model: z.string(),
  }),
  /** A piece of assistant text, in order; concatenating them gives the message text. */
  z.object({ type: z.literal('text'), delta: z.string() }),
  /** The model asked for a tool; the result follows as `tool_result` with the same id. */
  z.object({ type: z.literal('tool_call'), id: z.string(), name: z.string(), arguments: z.string() }),
  z.object({
    type: z.literal('tool_result'),
    id: z.string(),
    name: z.string(),
    /** What the tool returned, cut to a display size (the model saw up to `outputChars` characters). */
    output: z.string(),
    truncated: z.boolean(),
    outputChars: z.number().int().nonnegative(),
    isError: z.boolean(),
    ms: z.number().nonnegative(),
  }),
  /** Last event of a finished run. */
  z.object({
    type: z.literal('done'),
    finishReason: finishReasonSchema,
    /** Human-readable explanation when the run stopped for a reason other than the model's own. */
    notice: z.string().optional(),
    usage: usageSchema,
    /** Model calls made. */
    iterations: z.number().int().nonnegative(),
    model: z.string(),
    /** The assistant and tool messages to persist after the user message, in order. */
    newMessages: z.array(chatMessageSchema),
  }),
  /** Last event of a failed run; what was produced before the failure is still in `newMessages`. */
  z.object({
    type: z.literal('error'),
    code: errorCodeSchema,
    message: z.string(),
    /** HTTP status of the upstream answer, when there was one. */
    status: z.number().int().optional(),
    usage: usageSchema,
    iterations: z.number().int().nonnegative(),
    newMessages: z.array(chatMessageSchema),
  }),
]);

export type Attachment = z.infer<typeof attachmentSchema>;
export type ToolCall = z.infer<typeof toolCallSchema>;
export type ChatMessage = z.infer<typeof chatMessageSchema>;
export type UserMessage = z.infer<typeof userMessageSchema>;
export type ChatRequest = z.input<typeof chatRequestSchema>;
export type Usage = z.infer<typeof usageSchema>;
export type FinishReason = z.infer<typeof finishReasonSchema>;
export type ErrorCode = z.infer<typeof errorCodeSchema>;
export type ChatEvent = z.infer<typeof chatEventSchema>;
export type ChatEventType = ChatEvent['type'];
export type ChatEventOf<T extends ChatEventType> = Extract<ChatEvent, { type: T }>;

/** Serialises one event as a Server-Sent Events frame (`event:` is the type, `data:` the whole event). */
export function formatSseEvent(event: ChatEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * Reads a Server-Sent Events body into the JSON of each `data:` frame (comments such as `: keep-alive` are
 * skipped). Works in browsers and Node. The caller validates the shape.
 */
export async function* readSseJson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      finished = done;
      buffer += decoder.decode(value, { stream: !done });
      buffer = buffer.replace(/\r\n?/g, '\n');
      let boundary = buffer.indexOf('\n\n');
      while (boundary !== -1) {
        const frame = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const data = frame
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
          .join('\n');
        if (data) yield JSON.parse(data);
        boundary = buffer.indexOf('\n\n');
      }
      if (done) {
        const rest = buffer.trim();
        if (rest.startsWith('data:')) yield JSON.parse(rest.slice(5).trim());
        return;
      }
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/**
 * Reads a runtime SSE response body into typed events. Works on any `ReadableStream<Uint8Array>` (fetch in
 * Node and browsers). Comment lines (keep-alives) are skipped; a frame that does not parse is an error.
 * A consumer that stops early hangs up, which stops the run on the runtime.
 */
export async function* readChatEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ChatEvent> {
  for await (const data of readSseJson(body)) yield chatEventSchema.parse(data);
}
