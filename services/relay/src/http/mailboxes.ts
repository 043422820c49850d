import { validate } from '@agentstack/core';
import { mailboxView } from '../mailboxes.js';
import { dollars, pricing } from '../prices.js';
import * as s from '../schemas.js';
import { type C, optionalJson, type RouteKit, valid } from './kit.js';

/** Create, list, read, renew and delete mailboxes. */
export function mountMailboxRoutes(kit: RouteKit): void {
  const { app, routes, paid, payer, ownedMailbox, deps } = kit;
  const { prices, mailboxes, limits } = deps;
  const readPrice = dollars(prices.read);
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
}
