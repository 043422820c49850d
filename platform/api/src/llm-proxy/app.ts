import { type CoreVariables, formatMicros, isId, type Logger, requestLogger } from '@agentstack/core';
import { sql } from '@agentstack/db';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type ApiKeyIdentity, authenticateApiKey } from '../api-keys.js';
import type { Executor } from '../db.js';
import { priceWithMarkup } from '../models.js';
import { SOCKET_TENANT_HEADER } from '../orchestrator/gateway.js';
import type { ModelRow, PlatformStore } from '../store.js';
import type { ProxySettings } from './config.js';
import { invalidRequest, ProxyError } from './errors.js';
import { chatRequestSchema, paramPath } from './openai-schema.js';
import type { ProviderRegistry } from './providers/registry.js';
import type { StreamItem } from './providers/types.js';
import type { LlmProxy } from './proxy.js';
import type { RateLimiter } from './rate-limit.js';
import { ProxyStore } from './store.js';

export interface ProxyAppDeps {
  db: Executor;
  store: PlatformStore;
  proxy: LlmProxy;
  providers: ProviderRegistry;
  rateLimiter: RateLimiter;
  settings: ProxySettings;
  log: Logger;
}

type ProxyEnv = { Variables: CoreVariables & { identity: ApiKeyIdentity } };

/** Optional: the conversation a call belongs to, recorded on its usage row (must be one of the tenant's). */
export const CONVERSATION_HEADER = 'x-agentsquads-conversation-id';

function errorResponse(c: Context, error: ProxyError): Response {
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json(error.toJSON(), error.status as ContentfulStatusCode);
}

/** Every failure in OpenAI's error shape; nothing internal leaks. */
function onError(log: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ProxyError) return errorResponse(c, err);
    ((c.get('log' as never) as Logger | undefined) ?? log).error({ err }, 'LLM proxy request failed');
    return errorResponse(c, new ProxyError(500, 'api_error', 'internal_error', 'The proxy failed unexpectedly.'));
  };
}

/** `Authorization: Bearer sk-asq-…` → the tenant; suspended tenants are refused, paused ones are out of credits. */
function authenticate(store: PlatformStore): MiddlewareHandler<ProxyEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const key = /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '').trim() : '';
    if (!key) {
      throw new ProxyError(
        401,
        'invalid_request_error',
        'missing_api_key',
        'No API key provided. Send your tenant API key as `Authorization: Bearer sk-asq-…`.',
      );
    }
    const identity = await authenticateApiKey(store, key);
    if (!identity) {
      throw new ProxyError(
        401,
        'invalid_request_error',
        'invalid_api_key',
        `Incorrect API key provided: ${key.length > 10 ? `${key.slice(0, 10)}…` : '(too short)'}. The key is unknown or was revoked.`,
      );
    }
    // Through a tenant's gateway socket only that tenant's key works (identity comes from the socket).
    const socketTenant = c.req.header(SOCKET_TENANT_HEADER);
    if (socketTenant && socketTenant !== identity.tenantId) {
      throw new ProxyError(
        403,
        'permission_error',
        'key_not_for_this_tenant',
        "This API key belongs to another tenant than this runtime's.",
      );
    }
    if (identity.status === 'suspended') {
      throw new ProxyError(403, 'permission_error', 'account_suspended', 'This account is suspended.');
    }
    if (identity.status === 'paused') {
      throw new ProxyError(
        402,
        'insufficient_quota',
        'account_paused',
        'This account is paused because its credits ran out. Top up your credits to continue.',
        null,
        { 'x-should-retry': 'false' },
      );
    }
    c.set('identity', identity);
    await next();
  };
}

/** Reads the body up to the size limit, whatever Content-Length claims (chunked bodies have none). */
async function readBody(c: Context, maxBytes: number): Promise<unknown> {
  const tooLarge = () =>
    new ProxyError(
      413,
      'invalid_request_error',
      'request_too_large',
      `Request body is larger than ${maxBytes} bytes (LLM_PROXY_MAX_BODY_BYTES).`,
    );
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > maxBytes) throw tooLarge();
  const body = c.req.raw.body;
  if (!body)
    throw invalidRequest('Request body is empty; expected a JSON chat completion request.', null, 'invalid_json');
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    parts.push(value);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw invalidRequest('Request body is not valid JSON.', null, 'invalid_json');
  }
}

function modelJson(row: ModelRow, providers: ProviderRegistry) {
  return {
    id: row.name,
    object: 'model' as const,
    created: Math.floor(row.created_at.getTime() / 1000),
    owned_by: row.demo ? 'agentsquads-demo' : row.provider,
    display_name: row.display_name,
    // Everything labels the demo model as such (the UI shows `label`).
    label: row.demo && !/demo/i.test(row.display_name) ? `${row.display_name} (demo)` : row.display_name,
    demo: row.demo,
    provider: row.demo ? 'demo' : row.provider,
    available: providers.available(row),
    context_window: row.context_window,
    max_output_tokens: row.max_output_tokens,
    pricing: {
      currency: 'USD',
      input_per_million: formatMicros(priceWithMarkup(row.provider_cost_input_per_m_micros, row.markup_pct)),
      output_per_million: formatMicros(priceWithMarkup(row.provider_cost_output_per_m_micros, row.markup_pct)),
    },
  };
}

/**
 * The LLM proxy's HTTP surface (served on its own port): OpenAI-compatible `POST /v1/chat/completions` and
 * `GET /v1/models`, authenticated by a tenant API key, errors in OpenAI's shape.
 */
export function createProxyApp(deps: ProxyAppDeps): Hono<ProxyEnv> {
  const { store, proxy, providers, rateLimiter, settings } = deps;
  const app = new Hono<ProxyEnv>();
  app.onError(onError(deps.log));
  app.notFound((c) =>
    errorResponse(
      c,
      new ProxyError(
        404,
        'invalid_request_error',
        'unknown_url',
        `Unknown request URL: ${c.req.method} ${c.req.path}.`,
      ),
    ),
  );
  app.use('*', requestLogger(deps.log));

  app.get('/health', async (c) => {
    try {
      await sql`select 1`.execute(deps.db);
    } catch {
      return errorResponse(c, new ProxyError(503, 'api_error', 'database_unreachable', 'database unreachable'));
    }
    return c.json({ status: 'ok', service: 'llm-proxy', callsInFlight: proxy.callsInFlight, demo: providers.demo });
  });

  app.use('/v1/*', authenticate(store));

  app.get('/v1/models', async (c) => {
    const rows = await store.listModels({ enabledOnly: true });
    // Available models first, the demo model first among them when it is the one that works offline.
    const data = rows
      .map((row) => modelJson(row, providers))
      .sort((a, b) => Number(b.available) - Number(a.available) || Number(b.demo) - Number(a.demo));
    return c.json({ object: 'list', data });
  });

  app.get('/v1/models/:model{.+}', async (c) => {
    const row = await proxy.model(c.req.param('model'));
    return c.json(modelJson(row, providers));
  });

  app.post('/v1/chat/completions', async (c) => {
    const identity = c.get('identity');
    const log = c.get('log');
    // Independent of each other: count the request while its body arrives.
    const [decision, raw] = await Promise.all([
      rateLimiter.hit(identity.tenantId),
      readBody(c, settings.maxBodyBytes).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
    ]);
    c.header('x-ratelimit-limit-requests', String(decision.limit));
    c.header('x-ratelimit-remaining-requests', String(decision.remaining));
    c.header('x-ratelimit-reset-requests', `${decision.resetSeconds}s`);
    if (!decision.allowed) {
      throw new ProxyError(
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
        `Rate limit reached: at most ${decision.limit} requests per minute for this account. ` +
          `Try again in ${decision.retryAfterSeconds} s.`,
        null,
        { 'retry-after': String(decision.retryAfterSeconds) },
      );
    }

    if ('error' in raw) throw raw.error;
    const parsed = chatRequestSchema.safeParse(raw.value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const param = paramPath(issue.path) || null;
      throw invalidRequest(param ? `${param}: ${issue.message}` : issue.message, param);
    }
    const request = parsed.data;

    const conversation = c.req.header(CONVERSATION_HEADER);
    let conversationId: string | null = null;
    if (conversation) {
      if (
        !isId('cnv', conversation) ||
        !(await new ProxyStore(deps.db).conversationExists(identity.tenantId, conversation))
      ) {
        throw invalidRequest(
          `${CONVERSATION_HEADER}: not a conversation of this account`,
          `header.${CONVERSATION_HEADER}`,
        );
      }
      conversationId = conversation;
    }

    const call = await proxy.prepare(
      { tenantId: identity.tenantId, requestId: c.get('requestId'), conversationId, log },
      request,
    );
    for (const [name, value] of Object.entries(call.headers)) c.header(name, value);

    if (!request.stream) {
      const { body } = await call.complete(() => c.req.raw.signal.aborted);
      return c.json(body);
    }
    // From here the stream pump owns the call; until then a failure must not strand its hold.
    let items: AsyncIterable<StreamItem>;
    try {
      items = await call.openStream();
    } catch (err) {
      await call.abandon();
      throw err;
    }
    const encoder = new TextEncoder();
    let gone = false;
    let goneListener: (() => void) | undefined;
    const markGone = () => {
      if (gone) return;
      gone = true;
      goneListener?.();
    };
    c.req.raw.signal.addEventListener('abort', markGone, { once: true });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        void call.pump(items, {
          send: (text) => {
            if (gone) return;
            try {
              controller.enqueue(encoder.encode(text));
            } catch {
              markGone();
            }
          },
          close: () => {
            if (gone) return;
            try {
              controller.close();
            } catch {
              // already closed by a disconnect
            }
          },
          onGone: (listener) => {
            goneListener = listener;
            if (gone) listener();
          },
        });
      },
      cancel: markGone,
    });
    const headers = new Headers(c.res.headers);
    headers.set('content-type', 'text/event-stream; charset=utf-8');
    headers.set('cache-control', 'no-cache');
    headers.set('x-accel-buffering', 'no');
    return new Response(stream, { status: 200, headers });
  });

  return app;
}
