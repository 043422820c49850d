import { type Logger, randomToken } from '@agentstack/core';
import type { Usage } from '../credits.js';
import type { UsageOutcome, UsageSource } from '../db.js';
import type { ModelRow, PlatformStore } from '../store.js';
import { priceCall, priceOf } from './billing.js';
import type { ProxySettings } from './config.js';
import { insufficientCredits, modelNotFound, ProxyError, toProxyError } from './errors.js';
import { inputTokensUpperBound, typicalInputTokens, typicalTokens } from './estimate.js';
import type { ChatCompletion, ChatRequest } from './openai-schema.js';
import type { ProviderRegistry } from './providers/registry.js';
import type { Provider, ProviderUsage, StreamItem, UpstreamCall } from './providers/types.js';
import type { Reservations, Settlement } from './reservations.js';
import { SSE_DONE, sseData } from './sse.js';

/** Why the proxy stopped a provider itself (rather than the provider failing). */
class ProxyAbort extends Error {
  constructor(readonly why: 'drain_timeout' | 'shutdown') {
    super(`stopped by the proxy: ${why}`);
  }
}

export interface CallContext {
  tenantId: string;
  requestId: string;
  conversationId: string | null;
  log: Logger;
}

/** Where a stream's text goes: the HTTP response, for as long as the client is there. */
export interface StreamSink {
  send(text: string): void;
  close(): void;
  /** Registers what to do when the client disconnects. */
  onGone(listener: () => void): void;
}

/**
 * The proxy's domain logic (no HTTP): for one validated request, find the model, its provider and the hold,
 * call the provider, and bill the call exactly once — from the provider's usage — whatever happens to the
 * client. Calls in flight renew their holds; `close()` stops them at shutdown.
 */
export class LlmProxy {
  private readonly inflight = new Set<ProxyCall>();
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly deps: {
      store: PlatformStore;
      providers: ProviderRegistry;
      reservations: Reservations;
      settings: ProxySettings;
      log: Logger;
    },
  ) {}

  /** Starts renewing the holds of calls in flight (a third of their lifetime, so two renewals may fail). */
  start(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(
      () => {
        const ids = [...this.inflight].map((call) => call.reservationId);
        if (ids.length === 0) return;
        this.deps.reservations.renew(ids).catch((err) => this.deps.log.error({ err }, 'renewing LLM holds failed'));
      },
      Math.max(50, this.deps.settings.reservationTtlMs / 3),
    );
    this.renewTimer.unref();
  }

  get callsInFlight(): number {
    return this.inflight.size;
  }

  /** The model row if it can be used (exists, enabled); else a 404 in OpenAI's words. */
  async model(name: string): Promise<ModelRow> {
    const model = await this.deps.store.findModelByName(name);
    if (!model?.enabled) throw modelNotFound(name, Boolean(model));
    return model;
  }

  /** Everything before the provider: model, provider, and the hold on the tenant's credits. */
  async prepare(ctx: CallContext, request: ChatRequest): Promise<ProxyCall> {
    const model = await this.model(request.model);
    const provider = this.deps.providers.forModel(model);
    const inputTokens = inputTokensUpperBound(request);
    const requested = request.max_completion_tokens ?? request.max_tokens ?? undefined;
    const hold = await this.deps.reservations.hold({
      tenantId: ctx.tenantId,
      model: model.name,
      requestId: ctx.requestId,
      price: priceOf(model),
      inputTokens,
      requestedMaxTokens: requested,
      modelMaxOutputTokens: model.max_output_tokens,
      minOutputTokens: this.deps.settings.minOutputTokens,
    });
    if (!hold.ok) {
      throw insufficientCredits(model.name, hold.balanceMicros, hold.minimumMicros, hold.minOutputTokens);
    }
    const call = new ProxyCall(this, ctx, request, model, provider, hold);
    this.inflight.add(call);
    return call;
  }

  /** @internal */
  finished(call: ProxyCall): void {
    this.inflight.delete(call);
  }

  /**
   * Shutdown: stops every call in flight (each bills what its provider produced so far, or releases its hold
   * when nothing was) and waits for them to settle, at most `timeoutMs`.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
    const calls = [...this.inflight];
    for (const call of calls) call.abort(new ProxyAbort('shutdown'));
    await Promise.race([
      Promise.allSettled(calls.map((call) => call.done)),
      new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
  }
}

/** What a call produced, for billing when the provider's own usage never arrived. */
class Produced {
  text = '';
  add(item: StreamItem): void {
    if (item.type !== 'chunk') return;
    for (const choice of item.chunk.choices) {
      if (choice.delta.content) this.text += choice.delta.content;
      if (choice.delta.refusal) this.text += choice.delta.refusal;
      for (const call of choice.delta.tool_calls ?? []) {
        this.text += (call.function?.name ?? '') + (call.function?.arguments ?? '');
      }
    }
  }
}

/** One call, from its hold to its bill. */
export class ProxyCall {
  readonly id = `chatcmpl-${randomToken(24)}`;
  readonly created = Math.floor(Date.now() / 1000);
  readonly reservationId: string;
  readonly maxTokens: number;
  readonly capped: boolean;
  /** Settles when the call is billed or its hold released (never rejects). */
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly controller = new AbortController();
  private closed = false;

  constructor(
    private readonly proxy: LlmProxy,
    private readonly ctx: CallContext,
    readonly request: ChatRequest,
    readonly model: ModelRow,
    private readonly provider: Provider,
    hold: { reservationId: string; maxTokens: number; capped: boolean },
  ) {
    this.reservationId = hold.reservationId;
    this.maxTokens = hold.maxTokens;
    this.capped = hold.capped;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** Headers every answer of this call carries. */
  get headers(): Record<string, string> {
    return {
      'x-agentsquads-max-tokens': String(this.maxTokens),
      ...(this.capped ? { 'x-agentsquads-max-tokens-capped': 'true' } : {}),
    };
  }

  /** Gives the hold back if the call never got as far as billing (the handler failed around it). */
  async abandon(): Promise<void> {
    await this.release('abandoned by the HTTP handler');
  }

  abort(reason: ProxyAbort): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  private upstreamCall(): UpstreamCall {
    return {
      request: this.request,
      upstreamModel: this.model.upstream_model,
      maxTokens: this.maxTokens,
      id: this.id,
      created: this.created,
      signal: this.controller.signal,
    };
  }

  /** A non-streaming call. The client leaving does not stop it: it is billed when the provider answers. */
  async complete(clientGone: () => boolean): Promise<{ body: ChatCompletion; settlement: Settlement | undefined }> {
    let result: Awaited<ReturnType<Provider['complete']>>;
    try {
      result = await this.provider.complete(this.upstreamCall());
    } catch (err) {
      if (err instanceof ProxyAbort) {
        await this.release('nothing was produced before the proxy stopped');
        throw new ProxyError(503, 'api_error', 'proxy_shutting_down', 'The proxy is restarting; try again.');
      }
      throw await this.fail(err);
    }
    const content = result.body.choices.map(
      (c) => (c.message.content ?? '') + JSON.stringify(c.message.tool_calls ?? ''),
    );
    const usage = result.usage ?? this.estimate(undefined, content.join(''));
    const settlement = await this.settle(
      usage,
      result.usage ? 'provider' : 'estimated',
      clientGone() ? 'client_disconnected' : 'completed',
    );
    return {
      body: { ...result.body, model: this.model.name, usage: usage.openai } as ChatCompletion,
      settlement,
    };
  }

  /** Opens the provider's stream; a refusal releases the hold and becomes the client's error status. */
  async openStream(): Promise<AsyncIterable<StreamItem>> {
    try {
      return await this.provider.openStream(this.upstreamCall());
    } catch (err) {
      throw await this.fail(err);
    }
  }

  /**
   * Reads the provider's stream to its end and forwards it to the client while the client is there; then bills
   * the call. The usage chunk is shown only to clients that asked for it (`stream_options.include_usage`).
   *
   * When the client disconnects, the proxy keeps reading (without forwarding) so the call is billed from the
   * provider's own usage figures: providers bill us for what they generate, and OpenAI reports usage only at
   * the end of a stream. The output is bounded by the max_tokens the hold covers; if the provider is still
   * going after LLM_PROXY_DRAIN_TIMEOUT_SECONDS, the proxy stops it and bills an estimate of what it produced.
   * A provider failure bills nothing (the hold is released) and ends the stream with an OpenAI-style error
   * event.
   */
  async pump(items: AsyncIterable<StreamItem>, sink: StreamSink): Promise<void> {
    let clientGone = false;
    let drainTimer: NodeJS.Timeout | undefined;
    sink.onGone(() => {
      if (clientGone) return;
      clientGone = true;
      this.ctx.log.info({ reservationId: this.reservationId }, 'client left mid-stream; reading the rest for usage');
      drainTimer = setTimeout(
        () => this.abort(new ProxyAbort('drain_timeout')),
        this.proxy.deps.settings.drainTimeoutMs,
      );
      drainTimer.unref();
    });
    const produced = new Produced();
    let usage: ProviderUsage | undefined;
    const includeUsage = this.request.stream_options?.include_usage === true;
    try {
      for await (const item of items) {
        produced.add(item);
        if (item.type === 'usage') usage = item.usage;
        else if (!clientGone) sink.send(sseData({ ...item.chunk, model: this.model.name }));
      }
      const billed = usage ?? this.estimate(undefined, produced.text);
      await this.settle(billed, usage ? 'provider' : 'estimated', clientGone ? 'client_disconnected' : 'completed');
      if (!clientGone) {
        if (includeUsage) {
          sink.send(
            sseData({
              id: this.id,
              object: 'chat.completion.chunk',
              created: this.created,
              model: this.model.name,
              choices: [],
              usage: billed.openai,
            }),
          );
        }
        sink.send(SSE_DONE);
      }
    } catch (err) {
      const reason = this.controller.signal.reason;
      if (reason instanceof ProxyAbort) {
        // We stopped the provider: bill what it produced up to then (its own counts where it sent them).
        if (produced.text === '' && !usage?.outputTokens) {
          await this.release('stopped before any output');
        } else {
          await this.settle(this.estimate(usage, produced.text), 'estimated', 'aborted');
        }
        if (!clientGone) {
          sink.send(
            sseData(
              new ProxyError(
                503,
                'api_error',
                'proxy_shutting_down',
                'The proxy is restarting; the answer was cut short.',
              ),
            ),
          );
        }
      } else {
        const error = await this.fail(err);
        if (!clientGone) sink.send(sseData(error));
      }
    } finally {
      clearTimeout(drainTimer);
      if (!clientGone) sink.close();
    }
  }

  /**
   * Usage when the provider's own is missing or partial: its counts where it gave them (Anthropic and Gemini
   * report input tokens at the start), otherwise typical counts of the request and of what was produced.
   */
  private estimate(partial: ProviderUsage | undefined, producedText: string): ProviderUsage {
    const inputTokens = partial?.inputTokens || typicalInputTokens(this.request);
    const outputTokens = Math.min(this.maxTokens, Math.max(partial?.outputTokens ?? 0, typicalTokens(producedText)));
    return {
      inputTokens,
      outputTokens,
      openai: { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
    };
  }

  private async fail(err: unknown): Promise<ProxyError> {
    const error = toProxyError(err, this.provider.label);
    await this.release(error ? `provider: ${error.code}` : 'unexpected error');
    if (!error) {
      this.ctx.log.error({ err }, 'LLM call failed');
      return new ProxyError(500, 'api_error', 'internal_error', 'The proxy failed; you were not charged.');
    }
    this.ctx.log.warn({ code: error.code, status: error.status, detail: (err as Error).message }, 'LLM call failed');
    return error;
  }

  private async release(why: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await retry(() => this.proxy.deps.reservations.release(this.reservationId));
      this.ctx.log.info({ reservationId: this.reservationId, why }, 'LLM hold released, nothing billed');
    } catch (err) {
      // The sweeper releases it once it expires.
      this.ctx.log.error({ err, reservationId: this.reservationId }, 'releasing an LLM hold failed');
    } finally {
      this.proxy.finished(this);
      this.resolveDone();
    }
  }

  private async settle(
    usage: ProviderUsage,
    source: UsageSource,
    outcome: UsageOutcome,
  ): Promise<Settlement | undefined> {
    if (this.closed) return undefined;
    this.closed = true;
    const { chargeMicros, costMicros, marginMicros } = priceCall(
      priceOf(this.model),
      usage.inputTokens,
      usage.outputTokens,
    );
    const bill: Usage = {
      tenantId: this.ctx.tenantId,
      model: this.model.name,
      modelId: this.model.id,
      provider: this.model.demo ? 'demo' : this.model.provider,
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      costMicros,
      marginMicros,
      conversationId: this.ctx.conversationId,
      requestId: this.ctx.requestId,
      usageSource: source,
      outcome,
    };
    try {
      const settlement = await retry(() => this.proxy.deps.reservations.settle(this.reservationId, bill));
      this.ctx.log.info(
        {
          model: this.model.name,
          inputTokens: usage.inputTokens,
          outputTokens: usage.outputTokens,
          chargedMicros: String(chargeMicros),
          balanceAfterMicros: String(settlement.balanceAfterMicros),
          source,
          outcome,
        },
        'LLM call billed',
      );
      return settlement;
    } catch (err) {
      this.ctx.log.error({ err, reservationId: this.reservationId, usage: bill }, 'billing an LLM call failed');
      return undefined;
    } finally {
      this.proxy.finished(this);
      this.resolveDone();
    }
  }
}

/** Database hiccups should not lose a bill: three tries, 50 ms and 250 ms apart. */
async function retry<T>(task: () => Promise<T>): Promise<T> {
  const delays = [50, 250];
  for (let attempt = 0; ; attempt++) {
    try {
      return await task();
    } catch (err) {
      const delay = delays[attempt];
      if (delay === undefined) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
