import { Agent, type Dispatcher, fetch } from 'undici';
import { type ChatEvent, type ChatRequest, readChatEvents } from './events.js';

/** A non-2xx answer from a runtime, with its error envelope. */
export class RuntimeHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RuntimeHttpError';
  }
}

export interface RuntimeClientOptions {
  /** `http://host:port` of the runtime; ignored for the connection when `socketPath` is set. */
  baseUrl?: string;
  /** The runtime's unix socket (RUNTIME_SOCKET). */
  socketPath?: string;
  /** RUNTIME_AUTH_TOKEN. */
  token: string;
}

export interface RuntimeHealth {
  ok: boolean;
  tenantId: string;
  version: string;
  activeRuns: number;
}

/**
 * A Node client for one tenant runtime, over TCP or its unix socket, for the platform API (which relays
 * chat to the browser) and tests.
 */
export function createRuntimeClient(options: RuntimeClientOptions) {
  const dispatcher: Dispatcher = options.socketPath
    ? new Agent({ connect: { socketPath: options.socketPath } })
    : new Agent();
  const base = (options.socketPath ? 'http://runtime' : (options.baseUrl ?? '')).replace(/\/$/, '');
  if (!base) throw new Error('createRuntimeClient needs baseUrl or socketPath');
  const auth = { authorization: `Bearer ${options.token}` };

  async function call(
    path: string,
    init: { method?: string; body?: unknown; signal?: AbortSignal; auth?: boolean } = {},
  ) {
    const res = await fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      dispatcher,
      headers: {
        ...(init.auth === false ? {} : auth),
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    if (!res.ok) {
      const envelope = (await res.json().catch(() => undefined)) as
        | { error?: { code?: string; message?: string; field?: string } }
        | undefined;
      throw new RuntimeHttpError(
        res.status,
        envelope?.error?.code ?? 'http_error',
        envelope?.error?.message ?? `runtime answered ${res.status}`,
        envelope?.error?.field,
      );
    }
    return res;
  }

  return {
    async health(signal?: AbortSignal): Promise<RuntimeHealth> {
      return (await (await call('/health', { auth: false, ...(signal ? { signal } : {}) })).json()) as RuntimeHealth;
    },
    async hands() {
      return (await (await call('/v1/hands')).json()) as {
        defaultHand: string;
        hands: { name: string; description: string; tools: string[]; settings: Record<string, unknown> }[];
      };
    },
    /**
     * Starts a run. Resolves once the runtime accepted it (4xx/5xx throw `RuntimeHttpError`); `events`
     * then yields every event up to `done` or `error`. Aborting `signal` (or leaving the loop early) hangs
     * up, which stops the run; `cancel(runId)` stops it and still delivers `done` with what was produced.
     */
    async chat(
      request: ChatRequest,
      signal?: AbortSignal,
    ): Promise<{ runId: string; events: AsyncGenerator<ChatEvent> }> {
      const res = await call('/v1/chat', { method: 'POST', body: request, ...(signal ? { signal } : {}) });
      if (!res.body) throw new RuntimeHttpError(502, 'bad_gateway', 'runtime sent no event stream');
      return {
        runId: res.headers.get('x-run-id') ?? '',
        events: readChatEvents(res.body as ReadableStream<Uint8Array>),
      };
    },
    /** Cancels a run; false when it had already finished. */
    async cancel(runId: string): Promise<boolean> {
      try {
        await call(`/v1/chat/${encodeURIComponent(runId)}/cancel`, { method: 'POST' });
        return true;
      } catch (err) {
        if (err instanceof RuntimeHttpError && err.status === 404) return false;
        throw err;
      }
    },
    close: () => dispatcher.close(),
  };
}

export type RuntimeClient = ReturnType<typeof createRuntimeClient>;
