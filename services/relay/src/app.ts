import {
  bodyLimit,
  buildLlmsTxt,
  buildOpenApi,
  type CoreVariables,
  decodeCursor,
  errorHandler,
  fromZodError,
  invalidRequest,
  type Logger,
  newId,
  notFound,
  notFoundHandler,
  type RouteSpec,
  requestLogger,
  toPage,
  validate,
} from '@agentstack/core';
import type { PaidRouteOptions, PaidVariables, PaymentGate } from '@agentstack/x402';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { validator } from 'hono/validator';
import { z } from 'zod';
import type { MailBackend } from './backend.js';
import type { DeliveryRow, DomainRow, MailboxRow } from './db.js';
import type { Domains } from './domains.js';
import { llmsGuide } from './guide.js';
import { type Mailboxes, mailboxView, webhookView } from './mailboxes.js';
import { dollars, type Prices, pricing } from './prices.js';
import * as s from './schemas.js';
import type { Sender, SendRequest } from './sending.js';
import { webhookUrlProblem } from './webhooks/http.js';
import type { WebhookStore } from './webhooks/outbox.js';

export interface RelayAppDeps {
  gate: PaymentGate;
  prices: Prices;
  mailboxes: Mailboxes;
  domains: Domains;
  sender: Sender;
  backend: MailBackend;
  webhooks: WebhookStore;
  sealWebhookSecret: (webhookId: string, secret: string) => string;
  log: Logger;
  limits: { defaultTtlMs: number; maxTtlDays: number; maxSendBytes: number; allowPrivateWebhooks: boolean };
  /** The embedded SMTP port (for /v1/health), when it runs. */
  smtpPort: () => number | undefined;
  /** Extra routes mounted by the backend (Stalwart's MTA hook endpoint). */
  extraRoutes?: (app: Hono<{ Variables: RelayVariables }>) => RouteSpec[];
}

export type RelayVariables = CoreVariables &
  PaidVariables & {
    mailbox: MailboxRow;
    domain: DomainRow;
    webhookId: string;
    reservedDay: string;
    sendRequest: SendRequest;
  };

type C = Context<{ Variables: RelayVariables }>;

/** Reads what a validator stored, typed by its schema (Hono's own typing does not survive our route table). */
const valid = <T extends z.ZodType>(c: C, target: 'json' | 'query' | 'param', _schema: T): z.output<T> =>
  (c.req.valid as (t: string) => unknown)(target) as z.output<T>;

/** A JSON body that may be left out entirely (`POST /v1/mailboxes` with no body means all defaults). */
function optionalJson<T extends z.ZodType>(schema: T): MiddlewareHandler {
  return validator('json', async (value, c) => {
    const type = c.req.header('content-type') ?? '';
    const length = Number(c.req.header('content-length') ?? '0');
    if (!/json/i.test(type) && (length > 0 || c.req.header('transfer-encoding'))) {
      throw invalidRequest('request body must be JSON (Content-Type: application/json)', 'body');
    }
    const result = await schema.safeParseAsync(value ?? {});
    if (!result.success) throw fromZodError(result.error, 'body');
    return result.data as never;
  }) as MiddlewareHandler;
}

const deliveryCursor = z.object({ c: z.string(), i: z.string() });

const deliveryView = (d: DeliveryRow) => ({
  id: d.id,
  webhookId: d.webhook_id,
  event: d.event,
  status: d.status,
  attempts: d.attempts,
  nextAttemptAt: d.status === 'pending' ? (d.next_attempt_at as Date).toISOString() : null,
  lastAttemptAt: d.last_attempt_at?.toISOString() ?? null,
  lastStatusCode: d.last_status_code,
  lastError: d.last_error,
  deliveredAt: d.delivered_at?.toISOString() ?? null,
  createdAt: (d.created_at as Date).toISOString(),
});

/** relay.sh's HTTP API: every route priced and settled through the x402 gate, owned by the paying wallet. */
export function relayApp(deps: RelayAppDeps) {
  const { gate, prices, mailboxes, domains, sender, backend, webhooks, limits } = deps;
  const app = new Hono<{ Variables: RelayVariables }>();
  const routes: RouteSpec[] = [];
  app.use('*', requestLogger(deps.log));
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);

  const paid = (options: PaidRouteOptions) => gate.paid(options) as unknown as MiddlewareHandler;
  const readPrice = dollars(prices.read);
  const payer = (c: C) => c.get('payer');
  const ownedMailbox = async (c: C) => {
    const row = await mailboxes.getOwned(payer(c), valid(c, 'param', s.mailboxParams).id);
    c.set('mailbox', row);
    return row;
  };

  app.get('/v1/health', (c) =>
    c.json({
      status: 'ok' as const,
      service: 'relay' as const,
      backend: backend.name,
      domains: domains.serviceDomainNames,
      smtp: deps.smtpPort() ? { port: deps.smtpPort() as number } : null,
    }),
  );
  routes.push({
    method: 'get',
    path: '/v1/health',
    summary: 'liveness and configuration summary',
    response: s.healthResponse,
  });

  // ---- mailboxes

  const createBody = s.createMailboxBody(limits.maxTtlDays);
  routes.push({
    method: 'post',
    path: '/v1/mailboxes',
    summary: 'create a mailbox with a random, unguessable address',
    description: `The body may be omitted. Price: ${dollars(prices.mailbox)} including the first 24 hours, plus ${dollars(prices.mailboxDay)} for every further started day of the TTL. Reversible (an unused new mailbox), so it settles only after it exists; if settlement then fails the mailbox is removed.`,
    price: `${dollars(prices.mailbox)} + ${dollars(prices.mailboxDay)}/day beyond 24 h`,
    settlement: 'after-success',
    auth: 'x402 payer (becomes the owner)',
    idempotent: true,
    body: createBody,
    response: s.mailboxResponse,
  });
  app.post(
    '/v1/mailboxes',
    optionalJson(createBody),
    paid({
      price: (c) => pricing.createMailbox(prices, valid(c as C, 'json', createBody).ttl ?? limits.defaultTtlMs),
      settle: 'after-success',
      onSettleFailure: async (c) => {
        const row = (c as C).get('mailbox');
        if (row) await mailboxes.delete(row);
      },
    }),
    async (c) => {
      const body = valid(c, 'json', createBody);
      const row = await mailboxes.create(payer(c), { domain: body.domain, ttlMs: body.ttl ?? limits.defaultTtlMs });
      c.set('mailbox', row);
      return c.json(mailboxView(row), 201);
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes',
    summary: 'your live mailboxes, newest first',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer',
    query: s.messagesQuery.pick({ limit: true, cursor: true }),
    response: s.mailboxListResponse,
  });
  app.get(
    '/v1/mailboxes',
    validate('query', s.messagesQuery.pick({ limit: true, cursor: true })),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const q = valid(c, 'query', s.messagesQuery.pick({ limit: true, cursor: true }));
      return c.json(await mailboxes.list(payer(c), q.limit, q.cursor));
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id',
    summary: 'a mailbox: address, expiry, message counts, sends today, webhooks',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.mailboxParams,
    response: s.mailboxDetailsResponse,
  });
  app.get(
    '/v1/mailboxes/:id',
    validate('param', s.mailboxParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => c.json(await mailboxes.details(await ownedMailbox(c))),
  );

  routes.push({
    method: 'delete',
    path: '/v1/mailboxes/:id',
    summary: 'destroy a mailbox now, with all its messages, attachments and webhooks',
    description: 'Irreversible: ownership is checked before the payment settles, then it is deleted.',
    price: readPrice,
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.mailboxParams,
    response: s.deletedResponse,
  });
  app.delete(
    '/v1/mailboxes/:id',
    validate('param', s.mailboxParams),
    paid({ price: prices.read, settle: 'first', precheck: async (c) => void (await ownedMailbox(c as C)) }),
    async (c) => {
      const row = c.get('mailbox');
      await mailboxes.delete(row);
      return c.json({ id: row.id, deleted: true as const });
    },
  );

  const renewBody = s.renewBody(limits.maxTtlDays);
  routes.push({
    method: 'post',
    path: '/v1/mailboxes/:id/renew',
    summary: 'extend the TTL by whole days',
    description: `Price: ${dollars(prices.mailboxDay)} per day. The expiry is capped at ${limits.maxTtlDays} days from now. Reversible: settles after the extension; if settlement fails the old expiry is restored.`,
    price: `${dollars(prices.mailboxDay)} per day`,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.mailboxParams,
    body: renewBody,
    response: s.mailboxResponse,
  });
  app.post(
    '/v1/mailboxes/:id/renew',
    validate('param', s.mailboxParams),
    validate('json', renewBody),
    paid({
      price: (c) => pricing.renew(prices, valid(c as C, 'json', renewBody).days),
      settle: 'after-success',
      precheck: async (c) => void (await ownedMailbox(c as C)),
      onSettleFailure: async (c) => mailboxes.restoreExpiry((c as C).get('mailbox')),
    }),
    async (c) => {
      const row = await mailboxes.renew(c.get('mailbox'), valid(c, 'json', renewBody).days);
      return c.json(mailboxView(row));
    },
  );

  // ---- sending

  routes.push({
    method: 'post',
    path: '/v1/mailboxes/:id/send',
    summary: 'send a message from the mailbox (DKIM-signed)',
    description: `Irreversible, so it settles first; every check (ownership, recipients ≤ limit, size, routability, today's send limit) runs before the payment settles, and a refused send costs nothing. If the mail server then fails, the answer is 503 with details.paymentSettled=true and the send does not count against the daily limit.`,
    price: dollars(prices.send),
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.mailboxParams,
    body: s.sendBody,
    response: s.sendResponse,
  });
  app.post(
    '/v1/mailboxes/:id/send',
    bodyLimit(Math.ceil(limits.maxSendBytes * 1.4) + 64 * 1024),
    validate('param', s.mailboxParams),
    validate('json', s.sendBody),
    paid({
      price: prices.send,
      settle: 'first',
      precheck: async (c) => {
        const ctx = c as C;
        const mailbox = await ownedMailbox(ctx);
        const request = valid(ctx, 'json', s.sendBody) as SendRequest;
        ctx.set('sendRequest', request);
        await sender.check(request);
        ctx.set('reservedDay', await sender.reserve(mailbox));
      },
      onSettleFailure: async (c) => {
        const ctx = c as C;
        await sender.release(ctx.get('mailbox'), ctx.get('reservedDay'));
      },
    }),
    async (c) => {
      const mailbox = c.get('mailbox');
      const result = await sender.send(mailbox, c.get('sendRequest'), c.get('reservedDay'));
      return c.json({
        messageId: result.messageId,
        from: mailbox.address,
        accepted: result.accepted,
        rejected: result.rejected,
        ...(await sender.usage(mailbox)),
      });
    },
  );

  // ---- messages

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/messages',
    summary: 'messages, newest first',
    description: 'Filters: unread=true|false; from=<address> (exact, case-insensitive) or from=@domain.',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.mailboxParams,
    query: s.messagesQuery,
    response: s.messageListResponse,
  });
  app.get(
    '/v1/mailboxes/:id/messages',
    validate('param', s.mailboxParams),
    validate('query', s.messagesQuery),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const q = valid(c, 'query', s.messagesQuery);
      return c.json(await backend.listMessages(mailbox, q));
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/messages/:msg',
    summary: 'one message: headers, text, html, attachment list, SPF/DKIM/DMARC results; marks it read',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.messageParams,
    response: s.messageDetailResponse,
  });
  app.get(
    '/v1/mailboxes/:id/messages/:msg',
    validate('param', s.messageParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const { msg } = valid(c, 'param', s.messageParams);
      const message = await backend.getMessage(mailbox, msg, { markRead: true });
      if (!message) throw notFound('message');
      return c.json({
        ...message,
        attachments: message.attachments.map((a) => ({
          ...a,
          url: `/v1/mailboxes/${mailbox.id}/messages/${encodeURIComponent(msg)}/attachments/${encodeURIComponent(a.id)}`,
        })),
      });
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/messages/:msg/attachments/:att',
    summary: 'download one attachment (the raw bytes, with its Content-Type)',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.attachmentParams,
  });
  app.get(
    '/v1/mailboxes/:id/messages/:msg/attachments/:att',
    validate('param', s.attachmentParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const { msg, att } = valid(c, 'param', s.attachmentParams);
      const attachment = await backend.getAttachment(mailbox, msg, att);
      if (!attachment) throw notFound('attachment');
      const filename = (attachment.filename ?? 'attachment').replace(/[^\w.\- ]/g, '_');
      return new Response(new Uint8Array(attachment.content), {
        status: 200,
        headers: {
          'content-type': attachment.contentType,
          'content-length': String(attachment.content.length),
          'content-disposition': `attachment; filename="${filename}"; filename*=UTF-8''${encodeURIComponent(attachment.filename ?? 'attachment')}`,
          'x-content-type-options': 'nosniff',
          // Whatever the sender claimed the type to be, a browser must not run it in our origin.
          'content-security-policy': "sandbox; default-src 'none'",
        },
      });
    },
  );

  routes.push({
    method: 'delete',
    path: '/v1/mailboxes/:id/messages/:msg',
    summary: 'delete one message',
    price: readPrice,
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.messageParams,
    response: s.deletedResponse,
  });
  app.delete(
    '/v1/mailboxes/:id/messages/:msg',
    validate('param', s.messageParams),
    paid({
      price: prices.read,
      settle: 'first',
      precheck: async (c) => {
        const mailbox = await ownedMailbox(c as C);
        const { msg } = valid(c as C, 'param', s.messageParams);
        if (!(await backend.getMessage(mailbox, msg, { markRead: false }))) throw notFound('message');
      },
    }),
    async (c) => {
      const { msg } = valid(c, 'param', s.messageParams);
      if (!(await backend.deleteMessage(c.get('mailbox'), msg))) throw notFound('message');
      return c.json({ id: msg, deleted: true as const });
    },
  );

  // ---- webhooks

  routes.push({
    method: 'post',
    path: '/v1/mailboxes/:id/webhooks',
    summary: 'register a webhook for incoming mail (event message.received)',
    description:
      'Each delivery is a POST of {id, event, createdAt, data} signed with X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>. Reject timestamps older than 5 minutes. Non-2xx answers are retried with exponential backoff; a run of failures disables the webhook (reason in the mailbox details).',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.mailboxParams,
    body: s.webhookBody,
    response: s.webhookResponse,
  });
  app.post(
    '/v1/mailboxes/:id/webhooks',
    validate('param', s.mailboxParams),
    validate('json', s.webhookBody),
    paid({
      price: prices.read,
      settle: 'after-success',
      onSettleFailure: async (c) => {
        const id = (c as C).get('webhookId');
        const mailbox = (c as C).get('mailbox');
        if (id && mailbox) await webhooks.delete(mailbox.id, id);
      },
    }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const body = valid(c, 'json', s.webhookBody);
      const problem = webhookUrlProblem(body.url, limits.allowPrivateWebhooks);
      if (problem) throw invalidRequest(`url ${problem}`, 'body.url');
      const id = newId('wh');
      const row = await webhooks.create({
        id,
        mailboxId: mailbox.id,
        url: body.url,
        sealedSecret: deps.sealWebhookSecret(id, body.secret),
      });
      c.set('webhookId', id);
      return c.json(webhookView(row), 201);
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/webhooks',
    summary: "the mailbox's webhooks with their status (failures, disabled reason)",
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.mailboxParams,
  });
  app.get(
    '/v1/mailboxes/:id/webhooks',
    validate('param', s.mailboxParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      return c.json({ items: (await webhooks.listForMailbox(mailbox.id)).map(webhookView) });
    },
  );

  routes.push({
    method: 'delete',
    path: '/v1/mailboxes/:id/webhooks/:wh',
    summary: 'remove a webhook (and its delivery log)',
    price: readPrice,
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.webhookParams,
    response: s.deletedResponse,
  });
  app.delete(
    '/v1/mailboxes/:id/webhooks/:wh',
    validate('param', s.webhookParams),
    paid({
      price: prices.read,
      settle: 'first',
      precheck: async (c) => {
        const mailbox = await ownedMailbox(c as C);
        if (!(await webhooks.get(mailbox.id, valid(c as C, 'param', s.webhookParams).wh))) throw notFound('webhook');
      },
    }),
    async (c) => {
      const { wh } = valid(c, 'param', s.webhookParams);
      if (!(await webhooks.delete(c.get('mailbox').id, wh))) throw notFound('webhook');
      return c.json({ id: wh, deleted: true as const });
    },
  );

  routes.push({
    method: 'post',
    path: '/v1/mailboxes/:id/webhooks/:wh/enable',
    summary: 're-enable a webhook that was disabled after repeated failures',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.webhookParams,
    response: s.webhookResponse,
  });
  app.post(
    '/v1/mailboxes/:id/webhooks/:wh/enable',
    validate('param', s.webhookParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const row = await webhooks.enable(mailbox.id, valid(c, 'param', s.webhookParams).wh);
      if (!row) throw notFound('webhook');
      return c.json(webhookView(row));
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/deliveries',
    summary: 'the webhook delivery log of the mailbox, newest first',
    description:
      'Each delivery: status (pending/delivered/failed), attempts, last HTTP status and error, next attempt.',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.mailboxParams,
    query: s.deliveriesQuery,
    response: s.deliveryListResponse,
  });
  app.get(
    '/v1/mailboxes/:id/deliveries',
    validate('param', s.mailboxParams),
    validate('query', s.deliveriesQuery),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const q = valid(c, 'query', s.deliveriesQuery);
      const after = decodeCursor(q.cursor, deliveryCursor);
      const rows = await webhooks.listDeliveries(mailbox.id, q.limit, {
        webhookId: q.webhook,
        after: after ? { createdAt: after.c, id: after.i } : undefined,
      });
      return c.json(toPage(rows, q.limit, deliveryView, (d) => ({ c: (d.created_at as Date).toISOString(), i: d.id })));
    },
  );

  // ---- domains

  routes.push({
    method: 'post',
    path: '/v1/domains',
    summary:
      'register a custom domain: generates its DKIM key and returns the MX, SPF, DKIM and DMARC records to publish',
    description:
      'Mailboxes can use the domain once POST /v1/domains/:id/verify finds the required records. Several wallets may register the same name; the one whose DKIM record is published gets it.',
    price: dollars(prices.domain),
    settlement: 'after-success',
    auth: 'x402 payer (becomes the owner)',
    idempotent: true,
    body: s.domainBody,
    response: s.domainResponse,
  });
  app.post(
    '/v1/domains',
    validate('json', s.domainBody),
    paid({
      price: prices.domain,
      settle: 'after-success',
      onSettleFailure: async (c) => {
        const row = (c as C).get('domain');
        if (row) await domains.delete(row);
      },
    }),
    async (c) => {
      const view = await domains.create(payer(c), valid(c, 'json', s.domainBody).domain);
      c.set('domain', await domains.getOwned(payer(c), view.id));
      return c.json(view, 201);
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/domains/:id',
    summary: 'a custom domain, its records and the state of each at the last check',
    price: dollars(prices.domainOp),
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.domainParams,
    response: s.domainResponse,
  });
  app.get(
    '/v1/domains/:id',
    validate('param', s.domainParams),
    paid({ price: prices.domainOp, settle: 'after-success' }),
    async (c) => c.json(domains.view(await domains.getOwned(payer(c), valid(c, 'param', s.domainParams).id))),
  );

  routes.push({
    method: 'post',
    path: '/v1/domains/:id/verify',
    summary: 'look the records up in DNS now and report each one (verified, missing, mismatch, error)',
    price: dollars(prices.domainOp),
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.domainParams,
    response: s.domainResponse,
  });
  app.post(
    '/v1/domains/:id/verify',
    validate('param', s.domainParams),
    paid({ price: prices.domainOp, settle: 'after-success' }),
    async (c) => c.json(await domains.verify(await domains.getOwned(payer(c), valid(c, 'param', s.domainParams).id))),
  );

  routes.push({
    method: 'delete',
    path: '/v1/domains/:id',
    summary: 'remove a custom domain (refused with 409 while mailboxes use it)',
    price: dollars(prices.domainOp),
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.domainParams,
    response: s.deletedResponse,
  });
  app.delete(
    '/v1/domains/:id',
    validate('param', s.domainParams),
    paid({
      price: prices.domainOp,
      settle: 'first',
      precheck: async (c) => {
        const ctx = c as C;
        const row = await domains.getOwned(payer(ctx), valid(ctx, 'param', s.domainParams).id);
        ctx.set('domain', row);
        await domains.assertDeletable(row);
      },
    }),
    async (c) => {
      const row = c.get('domain');
      await domains.delete(row);
      return c.json({ id: row.id, deleted: true as const });
    },
  );

  if (deps.extraRoutes) routes.push(...deps.extraRoutes(app));

  // ---- discovery
  const info = {
    title: 'relay.sh',
    version: '1.0.0',
    description:
      'Email for agents: disposable and long-lived mailboxes, sending, webhooks and custom domains, paid per call with x402 (USDC on Base).',
    guide: llmsGuide({ prices, limits }),
  };
  routes.push(
    { method: 'get', path: '/openapi.json', summary: 'this API as OpenAPI 3.1' },
    { method: 'get', path: '/llms.txt', summary: 'this guide' },
  );
  const openapi = buildOpenApi(info, routes);
  const llms = buildLlmsTxt(info, routes);
  app.get('/openapi.json', (c) => c.json(openapi));
  app.get('/llms.txt', (c) => c.text(llms));

  return { app, routes };
}
