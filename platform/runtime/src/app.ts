import { createHash, timingSafeEqual } from 'node:crypto';
import {
  AppError,
  type CoreVariables,
  errorHandler,
  invalidRequest,
  type Logger,
  newId,
  notFound,
  notFoundHandler,
  rateLimited,
  requestLogger,
  unauthorized,
  validate,
} from '@agentstack/core';
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ClientDisconnected, RunCancelled, type runAgent } from './agent-loop.js';
import { AttachmentError, type ResolvedAttachment, resolveAttachments } from './attachments.js';
import { type ChatEvent, chatRequestSchema, formatSseEvent } from './events.js';
import { describeHand, type Hand } from './hands.js';
import type { ToolRegistry } from './tools/registry.js';

export interface RuntimeAppDeps {
  tenantId: string;
  version: string;
  authToken: string;
  hands: ReadonlyMap<string, Hand>;
  defaultHand: string;
  defaultModel: string;
  maxConcurrentRuns: number;
  workspace: string;
  tools: ToolRegistry;
  /** The agent loop with its dependencies bound (see main.ts). */
  agent: (run: Parameters<typeof runAgent>[1]) => AsyncGenerator<ChatEvent>;
  log: Logger;
  /** Keep-alive comment interval on event streams. */
  heartbeatMs?: number;
}

/** Maximum request body: prior context can be long, but not unbounded. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

interface ActiveRun {
  conversationId: string;
  controller: AbortController;
}

/** Compares secrets in constant time (hashing first makes the lengths equal). */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function bearerAuth(token: string): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !sameSecret(match[1]!.trim(), token)) {
      c.header('WWW-Authenticate', 'Bearer');
      throw unauthorized(match ? 'invalid runtime token' : 'Authorization: Bearer <runtime token> required');
    }
    await next();
  };
}

/**
 * The runtime's HTTP surface: health (open), the chat event stream and its cancel, and the Hand and tool
 * catalogs (all behind the runtime token).
 */
export function createRuntimeApp(deps: RuntimeAppDeps) {
  const runs = new Map<string, ActiveRun>();
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const app = new Hono<{ Variables: CoreVariables }>();
  app.use('*', requestLogger(deps.log));
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);

  app.get('/health', (c) =>
    c.json({ ok: true, tenantId: deps.tenantId, version: deps.version, activeRuns: runs.size }),
  );

  app.use('/v1/*', bearerAuth(deps.authToken));

  app.get('/v1/hands', (c) =>
    c.json({ defaultHand: deps.defaultHand, hands: [...deps.hands.values()].map(describeHand) }),
  );

  app.get('/v1/tools', (c) =>
    c.json({
      tools: deps.tools.names().map((name) => {
        const definition = deps.tools.definitions([name])[0]!;
        return { name, description: definition.function.description, parameters: definition.function.parameters };
      }),
    }),
  );

  app.post(
    '/v1/chat',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new AppError('payload_too_large', `request body exceeds ${MAX_BODY_BYTES} bytes`, 413, {
          field: 'body',
        });
      },
    }),
    validate('json', chatRequestSchema),
    async (c) => {
      const body = c.req.valid('json');
      const handName = body.hand ?? deps.defaultHand;
      const hand = deps.hands.get(handName);
      if (!hand) {
        throw invalidRequest(
          `unknown Hand "${handName}" (available: ${[...deps.hands.keys()].join(', ')})`,
          'body.hand',
        );
      }
      let attachments: ResolvedAttachment[];
      try {
        attachments = await resolveAttachments(deps.workspace, body.message.attachments ?? []);
      } catch (err) {
        if (!(err instanceof AttachmentError)) throw err;
        throw invalidRequest(err.message, `body.message.attachments.${err.index}.path`);
      }
      for (const run of runs.values()) {
        if (run.conversationId === body.conversationId) {
          throw new AppError('conversation_busy', 'this conversation already has a run in progress', 409);
        }
      }
      if (runs.size >= deps.maxConcurrentRuns) {
        throw rateLimited(`at most ${deps.maxConcurrentRuns} runs at once; try again when one finishes`, 2);
      }

      const runId = newId('run');
      const model = body.model ?? hand.settings.model ?? deps.defaultModel;
      const controller = new AbortController();
      runs.set(runId, { conversationId: body.conversationId, controller });
      const log = c.get('log').child({ runId, conversationId: body.conversationId, hand: hand.name });
      log.info({ model, historyMessages: body.messages.length }, 'run started');

      const events = deps.agent({
        hand,
        model,
        conversationId: body.conversationId,
        history: body.messages,
        message: { content: body.message.content, attachments },
        signal: controller.signal,
      });
      const encoder = new TextEncoder();
      let closed = false;
      let heartbeat: ReturnType<typeof setInterval> | undefined;
      const stream = new ReadableStream<Uint8Array>({
        start(sink) {
          const send = (text: string) => {
            if (!closed) sink.enqueue(encoder.encode(text));
          };
          heartbeat = setInterval(() => send(': keep-alive\n\n'), heartbeatMs);
          const pump = async () => {
            let last: ChatEvent | undefined;
            try {
              send(
                formatSseEvent({ type: 'start', runId, conversationId: body.conversationId, hand: hand.name, model }),
              );
              for await (const event of events) {
                last = event;
                send(formatSseEvent(event));
              }
            } catch (err) {
              log.error({ err }, 'run crashed');
              send(
                formatSseEvent({
                  type: 'error',
                  code: 'internal_error',
                  message: 'the agent run failed unexpectedly',
                  usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
                  iterations: 0,
                  newMessages: [],
                }),
              );
            } finally {
              clearInterval(heartbeat);
              runs.delete(runId);
              const outcome =
                last?.type === 'done'
                  ? last.finishReason
                  : last?.type === 'error'
                    ? `error:${last.code}`
                    : 'disconnected';
              log.info(
                last?.type === 'done' || last?.type === 'error'
                  ? { outcome, iterations: last.iterations, usage: last.usage }
                  : { outcome },
                'run finished',
              );
              if (!closed) {
                closed = true;
                sink.close();
              }
            }
          };
          void pump();
        },
        cancel() {
          // The client hung up: stop the model call and any running tool.
          closed = true;
          clearInterval(heartbeat);
          controller.abort(new ClientDisconnected('client disconnected'));
        },
      });
      return new Response(stream, {
        headers: {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          'x-accel-buffering': 'no',
          'x-run-id': runId,
        },
      });
    },
  );

  app.post('/v1/chat/:runId/cancel', (c) => {
    const runId = c.req.param('runId');
    const run = runs.get(runId);
    if (!run) throw notFound(`run ${runId} (it may have finished already)`);
    run.controller.abort(new RunCancelled('cancelled'));
    return c.json({ runId, cancelled: true });
  });

  return { app, activeRuns: () => runs.size };
}
