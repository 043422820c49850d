import { decodeCursor, invalidRequest, newId, notFound, toPage, validate } from '@agentstack/core';
import { z } from 'zod';
import type { DeliveryRow } from '../db.js';
import { webhookView } from '../mailboxes.js';
import { dollars } from '../prices.js';
import * as s from '../schemas.js';
import { webhookUrlProblem } from '../webhooks/http.js';
import { type C, type RouteKit, valid } from './kit.js';

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

/** Webhooks of a mailbox and their delivery log. */
export function mountWebhookRoutes(kit: RouteKit): void {
  const { app, routes, paid, ownedMailbox, deps } = kit;
  const { prices, webhooks, limits } = deps;
  const readPrice = dollars(prices.read);
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
}
