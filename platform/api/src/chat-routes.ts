import { lstat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { AppError, isId, type Logger, type RouteSpec, validate } from '@agentstack/core';
import type { Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import type { ChatRelay, PlatformChatEvent } from './chat.js';
import { only, type PlatformEnv } from './middleware.js';
import type { TenantRuntimes } from './runtimes.js';
import { tenantWorkspaceDir } from './tenants.js';

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
const KEEP_ALIVE_MS = 15_000;

const attachmentPath = z
  .string()
  .min(1)
  .max(300)
  .regex(/^uploads\/[A-Za-z0-9._-]+$/, 'a path returned by POST /api/files (uploads/<name>)');

export const chatBody = z.object({
  conversationId: z
    .string()
    .refine((v) => isId('cnv', v), 'expected a conversation id (cnv_…)')
    .optional(),
  message: z.string().trim().min(1, 'write a message').max(32_000),
  attachments: z
    .array(z.object({ path: attachmentPath }))
    .max(10)
    .optional(),
  hand: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'a Hand name')
    .optional(),
  model: z.string().min(1).max(200).optional(),
});

export const CHAT_ROUTES: RouteSpec[] = [
  {
    method: 'post',
    path: '/api/chat',
    summary: 'Send a message to your agent; answers a text/event-stream of the run (see CHAT.md)',
    body: chatBody,
    auth: 'session or service token',
  },
  {
    method: 'post',
    path: '/api/files',
    summary: 'Upload a file (multipart field `file`, ≤ 10 MB) into your agent’s workspace under uploads/',
    auth: 'session or service token',
    responseStatus: 201,
  },
  { method: 'get', path: '/api/runtime', summary: 'State of your agent runtime', auth: 'session or service token' },
];

/** Chat, uploads and runtime state for the signed-in user (CHAT.md is the contract). */
export function registerChatRoutes(
  app: Hono<PlatformEnv>,
  deps: { chat: ChatRelay; runtimes: TenantRuntimes | null; tenantDataDir: string; log: Logger },
): void {
  const tenantCallers = only('user', 'service');

  app.post('/api/chat', tenantCallers, validate('json', chatBody), async (c) => {
    const input = c.req.valid('json');
    const abort = new AbortController();
    // The person leaving (tab closed, stop button) aborts the run; what it produced so far is kept.
    c.req.raw.signal.addEventListener('abort', () => abort.abort(), { once: true });
    const run = await deps.chat.start(c.get('tenant').id, input, abort.signal);
    return new Response(sseStream(run.events, abort, deps.log), {
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        'x-conversation-id': run.conversationId,
      },
    });
  });

  app.get('/api/runtime', tenantCallers, async (c) => {
    if (!deps.runtimes) {
      return c.json({ state: 'none', backend: null, runtimeId: null, message: deps.chat.unavailableReason });
    }
    const status = await deps.runtimes.status(c.get('tenant').id);
    return c.json({
      state: status.state === 'missing' ? 'none' : status.state,
      backend: status.backend,
      runtimeId: status.runtimeId,
      ...(status.message ? { message: status.message } : {}),
    });
  });

  app.post('/api/files', tenantCallers, uploadLimit(), async (c) => {
    const runtimes = deps.runtimes;
    if (!runtimes) throw new AppError('runtime_unavailable', deps.chat.unavailableReason, 503);
    const form = await c.req.parseBody().catch(() => {
      throw new AppError('invalid_request', 'body: expected multipart/form-data with a file field', 400, {
        field: 'body.file',
      });
    });
    const file = form.file;
    if (!(file instanceof File)) {
      throw new AppError('invalid_request', 'body.file: attach one file in the field "file"', 400, {
        field: 'body.file',
      });
    }
    if (file.size > MAX_UPLOAD_BYTES) throw fileTooLarge();
    const tenantId = c.get('tenant').id;
    const name = await freeName(join(tenantWorkspaceDir(deps.tenantDataDir, tenantId), 'uploads'), safeName(file.name));
    const path = `uploads/${name}`;
    await runtimes.writeWorkspaceFile(tenantId, path, new Uint8Array(await file.arrayBuffer()));
    return c.json({ path, size: file.size, contentType: file.type || 'application/octet-stream' }, 201);
  });
}

const fileTooLarge = () =>
  new AppError('file_too_large', `files are limited to ${MAX_UPLOAD_BYTES / 1024 / 1024} MB`, 413, {
    field: 'body.file',
  });

/** Streamed bodies too: a client that sends no Content-Length is cut off at the limit as well. */
function uploadLimit(): MiddlewareHandler {
  return bodyLimit({
    maxSize: MAX_UPLOAD_BYTES + 64 * 1024,
    onError: () => {
      throw fileTooLarge();
    },
  });
}

/** A file name that is safe as one path component: letters, digits, `.`, `_`, `-`; never hidden, ≤ 100. */
export function safeName(original: string): string {
  const base = original.split(/[\\/]/).pop() ?? '';
  const ext = extname(base)
    .replace(/[^A-Za-z0-9.]/g, '')
    .slice(0, 12);
  const stem = base
    .slice(0, base.length - extname(base).length)
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+|[.-]+$/g, '')
    .slice(0, 80);
  return `${stem || 'file'}${ext}`;
}

/** `name`, or `stem-1.ext`, `stem-2.ext`, … whichever does not exist yet in `dir`. */
async function freeName(dir: string, name: string): Promise<string> {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let n = 0; n < 1000; n += 1) {
    const candidate = n === 0 ? name : `${stem}-${n}${ext}`;
    const exists = await lstat(join(dir, candidate)).then(
      () => true,
      () => false,
    );
    if (!exists) return candidate;
  }
  throw new AppError('conflict', 'too many files of that name; rename it', 409);
}

/** Server-Sent Events from the relay, with keep-alives; cancelling the stream aborts the run. */
function sseStream(events: AsyncGenerator<PlatformChatEvent>, abort: AbortController, log: Logger) {
  const encoder = new TextEncoder();
  let keepAlive: NodeJS.Timeout | undefined;
  let open = true;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (text: string) => {
        if (!open) return;
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          open = false;
        }
      };
      keepAlive = setInterval(() => send(': keep-alive\n\n'), KEEP_ALIVE_MS);
      void (async () => {
        try {
          // Drained to the end even after the client left: the relay persists what the run produced.
          for await (const event of events) send(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
        } catch (err) {
          log.error({ err }, 'chat relay failed');
          const failure = { type: 'error', code: 'internal_error', message: 'the chat relay failed', status: 500 };
          send(`event: error\ndata: ${JSON.stringify(failure)}\n\n`);
        } finally {
          clearInterval(keepAlive);
          if (open) {
            open = false;
            controller.close();
          }
        }
      })();
    },
    cancel() {
      open = false;
      clearInterval(keepAlive);
      abort.abort();
    },
  });
}
