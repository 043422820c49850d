import type { ChatEvent, ChatMessage, ToolCall } from '@agentsquads/runtime';
import { createRuntimeClient, RuntimeHttpError } from '@agentsquads/runtime/client';
import { AppError, type Logger } from '@agentstack/core';
import type { Conversations } from './conversations.js';
import type { Channel, Executor } from './db.js';
import type { TenantRuntimes } from './runtimes.js';
import { type MessageRow, PlatformStore } from './store.js';

/** How much of a conversation the runtime gets as context (the newest messages). */
const HISTORY_LIMIT = 400;
/** How long to wait for the LLM proxy to book the last call of a run before reporting the charge. */
const SETTLE_WAIT_MS = 3_000;

export interface ChatInput {
  conversationId?: string | undefined;
  message: string;
  attachments?: { path: string }[] | undefined;
  hand?: string | undefined;
  model?: string | undefined;
  channel?: Channel;
}

/** The events the platform adds around the runtime's (see CHAT.md). */
export type PlatformChatEvent =
  | { type: 'conversation'; conversationId: string; title: string; userMessageId: string; created: boolean }
  | { type: 'runtime'; state: 'starting' }
  | Exclude<ChatEvent, { type: 'done' | 'error' }>
  | (Extract<ChatEvent, { type: 'done' }> & Settlement)
  | (Omit<Extract<ChatEvent, { type: 'error' }>, 'code'> & { code: string } & Settlement);

interface Settlement {
  messageIds: string[];
  chargedMicros: string;
  balanceMicros: string;
}

export const insufficientCredits = () =>
  new AppError('insufficient_credits', 'your credit is used up: top up to keep chatting', 402);

/** A run that was accepted: the conversation and the user's message exist; `events` relays the rest. */
export interface AcceptedRun {
  conversationId: string;
  events: AsyncGenerator<PlatformChatEvent>;
}

/**
 * Webchat (and later channels): persists the user's message, makes sure the tenant's runtime is up,
 * relays the run's events and persists what the agent produced — also when the run fails or the person
 * hangs up, in which case the partial answer is kept, marked `stopped`.
 */
export class ChatRelay {
  /** Conversations with a run streaming in this process: one run per conversation at a time. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly deps: {
      db: Executor;
      conversations: Conversations;
      runtimes: TenantRuntimes | null;
      log: Logger;
      /** Told to the user when there are no runtimes (a configured backend failed to start). */
      unavailableReason?: string;
    },
  ) {}

  /** Why chat cannot run here, when there are no runtimes. */
  get unavailableReason(): string {
    return this.deps.unavailableReason ?? 'agent runtimes are not configured on this server';
  }

  /** Checks everything that can be refused before a stream starts (402, 404, 409, 503), then starts. */
  async start(tenantId: string, input: ChatInput, signal: AbortSignal): Promise<AcceptedRun> {
    const runtimes = this.deps.runtimes;
    if (!runtimes) {
      throw new AppError('runtime_unavailable', this.unavailableReason, 503);
    }
    const store = new PlatformStore(this.deps.db);
    const credits = await store.findCredits(tenantId);
    if (!credits || credits.balance_micros <= 0n) throw insufficientCredits();

    let created = false;
    let conversation = input.conversationId
      ? await this.deps.conversations.get(tenantId, input.conversationId)
      : undefined;
    if (conversation && this.busy.has(conversation.id)) {
      throw new AppError('conversation_busy', 'this conversation is already answering; wait for it or stop it', 409);
    }
    if (!conversation) {
      conversation = await this.deps.conversations.create(tenantId, titleFrom(input.message));
      created = true;
    }
    const conversationId = conversation.id;
    this.busy.add(conversationId);
    try {
      const recent = await store.recentMessages(tenantId, conversationId, HISTORY_LIMIT);
      // Context must not start with tool results whose call was cut off.
      const first = recent.findIndex((row) => row.role !== 'tool');
      const history = (first === -1 ? [] : recent.slice(first)).map(toRuntimeMessage);
      const userMessage = await this.deps.conversations.append(tenantId, conversationId, {
        role: 'user',
        content: input.message,
        channel: input.channel ?? 'web',
        metadata: input.attachments?.length ? { attachments: input.attachments } : {},
      });
      const opening: PlatformChatEvent = {
        type: 'conversation',
        conversationId,
        title: conversation.title,
        userMessageId: userMessage.id,
        created,
      };
      return {
        conversationId,
        events: this.relay(runtimes, tenantId, input, { conversationId, history, opening, signal }),
      };
    } catch (err) {
      this.busy.delete(conversationId);
      throw err;
    }
  }

  private async *relay(
    runtimes: TenantRuntimes,
    tenantId: string,
    input: ChatInput,
    run: { conversationId: string; history: ChatMessage[]; opening: PlatformChatEvent; signal: AbortSignal },
  ): AsyncGenerator<PlatformChatEvent> {
    const { conversationId, signal } = run;
    const since = await new PlatformStore(this.deps.db).now();
    const produced = new PartialRun();
    let client: ReturnType<typeof createRuntimeClient> | undefined;
    let runId = '';
    let final: Extract<ChatEvent, { type: 'done' | 'error' }> | undefined;
    let failure: { code: string; message: string; status?: number } | undefined;
    let messageIds: string[] = [];
    try {
      yield run.opening;
      let starting = false;
      const endpoint = await runtimes
        .ensureRunning(tenantId, () => {
          starting = true;
        })
        .catch((err: Error) => {
          failure = { code: 'runtime_unavailable', message: err.message, status: 503 };
          return undefined;
        });
      if (starting && !failure) yield { type: 'runtime', state: 'starting' };
      if (endpoint && !signal.aborted) {
        client = createRuntimeClient(endpoint);
        try {
          const accepted = await client.chat(
            {
              conversationId,
              messages: run.history,
              message: {
                role: 'user',
                content: input.message,
                ...(input.attachments?.length ? { attachments: input.attachments } : {}),
              },
              ...(input.hand ? { hand: input.hand } : {}),
              ...(input.model ? { model: input.model } : {}),
            },
            signal,
          );
          runId = accepted.runId;
          for await (const event of accepted.events) {
            if (event.type === 'done' || event.type === 'error') {
              final = event;
              break;
            }
            produced.add(event);
            yield event;
          }
        } catch (err) {
          if (!signal.aborted) failure = runtimeFailure(err);
        }
      }
    } finally {
      // Persist first (also when the person hung up and nobody reads the last event), then report.
      const stopped = signal.aborted && !final;
      if (stopped && runId && client) await client.cancel(runId).catch(() => false);
      const messages = final ? final.newMessages : produced.messages();
      messageIds = await this.persist(tenantId, conversationId, messages, {
        ...(final?.type === 'done' ? { model: final.model, usage: final.usage, finishReason: final.finishReason } : {}),
        ...(final?.type === 'error' ? { error: { code: final.code, message: final.message } } : {}),
        ...(failure ? { error: failure } : {}),
        ...(stopped ? { stopped: true } : {}),
      }).catch((err) => {
        this.deps.log.error({ err, tenantId, conversationId }, 'could not persist the agent messages');
        return [] as string[];
      });
      await client?.close().catch(() => undefined);
      this.busy.delete(conversationId);
    }
    const settlement = await this.settle(tenantId, conversationId, {
      messageIds,
      since,
      iterations: final?.iterations ?? 0,
    });
    if (final?.type === 'done') {
      yield { ...final, ...settlement };
    } else if (final?.type === 'error') {
      yield { ...final, ...settlement };
    } else if (failure) {
      yield {
        type: 'error',
        ...failure,
        usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
        iterations: 0,
        newMessages: produced.messages(),
        ...settlement,
      };
    }
  }

  /** What this run cost (the proxy's bookings for this conversation since it began) and the balance after. */
  private async settle(
    tenantId: string,
    conversationId: string,
    { messageIds, since, iterations }: { messageIds: string[]; since: Date; iterations: number },
  ): Promise<Settlement> {
    const store = new PlatformStore(this.deps.db);
    const deadline = Date.now() + SETTLE_WAIT_MS;
    let booked = await store.usageSince(tenantId, conversationId, since);
    // The proxy books a call when its stream ends, which can be a moment after the runtime saw the end.
    while (booked.calls < iterations && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      booked = await store.usageSince(tenantId, conversationId, since);
    }
    const credits = await store.findCredits(tenantId);
    return {
      messageIds,
      chargedMicros: booked.chargedMicros.toString(),
      balanceMicros: (credits?.balance_micros ?? 0n).toString(),
    };
  }

  private async persist(
    tenantId: string,
    conversationId: string,
    messages: ChatMessage[],
    outcome: Record<string, unknown>,
  ): Promise<string[]> {
    const ids: string[] = [];
    const lastAssistant = messages.findLastIndex((m) => m.role === 'assistant');
    for (const [index, message] of messages.entries()) {
      if (message.role === 'user' || message.role === 'system') continue;
      const row = await this.deps.conversations.append(tenantId, conversationId, {
        role: message.role,
        content: message.content ?? '',
        channel: 'web',
        metadata:
          message.role === 'assistant'
            ? {
                ...(message.toolCalls?.length ? { toolCalls: message.toolCalls } : {}),
                ...(index === lastAssistant ? outcome : {}),
              }
            : { toolCallId: message.toolCallId, name: message.name, ...(message.isError ? { isError: true } : {}) },
      });
      ids.push(row.id);
    }
    // A run that produced nothing still leaves a trace of why (error or stop) in the conversation.
    if (lastAssistant === -1 && (outcome.error || outcome.stopped)) {
      const row = await this.deps.conversations.append(tenantId, conversationId, {
        role: 'assistant',
        content: '',
        channel: 'web',
        metadata: outcome,
      });
      ids.push(row.id);
    }
    return ids;
  }
}

/** The first line of the first message, cut to 80 characters. */
export function titleFrom(message: string): string {
  const line = message.trim().split('\n')[0]?.trim() ?? '';
  return line.length > 80 ? `${line.slice(0, 79)}…` : line || 'New conversation';
}

/** A stored message as runtime context. */
export function toRuntimeMessage(row: MessageRow): ChatMessage {
  const meta = row.metadata as Record<string, unknown>;
  switch (row.role) {
    case 'assistant':
      return {
        role: 'assistant',
        content: row.content,
        ...(Array.isArray(meta.toolCalls) ? { toolCalls: meta.toolCalls as ToolCall[] } : {}),
      };
    case 'tool':
      return {
        role: 'tool',
        toolCallId: String(meta.toolCallId ?? ''),
        name: String(meta.name ?? 'tool'),
        content: row.content,
        ...(meta.isError ? { isError: true } : {}),
      };
    case 'system':
      return { role: 'system', content: row.content };
    default:
      return {
        role: 'user',
        content: row.content,
        ...(Array.isArray(meta.attachments) ? { attachments: meta.attachments as { path: string }[] } : {}),
      };
  }
}

function runtimeFailure(err: unknown): { code: string; message: string; status?: number } {
  if (err instanceof RuntimeHttpError) {
    if (err.status === 409) return { code: 'conversation_busy', message: err.message, status: 409 };
    return { code: 'runtime_error', message: err.message, status: err.status };
  }
  return { code: 'runtime_unavailable', message: 'the connection to your agent was lost', status: 503 };
}

/**
 * What a run produced so far, rebuilt from its events: used only when the run ended without `done`/`error`
 * (the person stopped it, or the runtime went away), since those carry the authoritative `newMessages`.
 */
class PartialRun {
  private readonly list: ChatMessage[] = [];
  private text = '';
  private calls: ToolCall[] = [];

  add(event: ChatEvent): void {
    if (event.type === 'text') {
      if (this.calls.length) this.flush();
      this.text += event.delta;
    } else if (event.type === 'tool_call') {
      this.calls.push({ id: event.id, name: event.name, arguments: event.arguments });
    } else if (event.type === 'tool_result') {
      if (this.calls.length || this.text) this.flush();
      this.list.push({
        role: 'tool',
        toolCallId: event.id,
        name: event.name,
        content: event.output,
        ...(event.isError ? { isError: true } : {}),
      });
    }
  }

  messages(): ChatMessage[] {
    const copy = new PartialRun();
    copy.list.push(...this.list);
    copy.text = this.text;
    copy.calls = [...this.calls];
    copy.flush();
    // A tool call without its result is dropped: the model must never see a call that got no answer.
    const answered = new Set(copy.list.flatMap((m) => (m.role === 'tool' ? [m.toolCallId] : [])));
    return copy.list.flatMap((m): ChatMessage[] => {
      if (m.role !== 'assistant' || !m.toolCalls) return [m];
      const toolCalls = m.toolCalls.filter((call) => answered.has(call.id));
      if (!toolCalls.length && !m.content) return [];
      return [{ role: 'assistant', content: m.content, ...(toolCalls.length ? { toolCalls } : {}) }];
    });
  }

  private flush(): void {
    if (!this.text && !this.calls.length) return;
    this.list.push({
      role: 'assistant',
      content: this.text || null,
      ...(this.calls.length ? { toolCalls: this.calls } : {}),
    });
    this.text = '';
    this.calls = [];
  }
}
