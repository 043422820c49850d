import { validate } from '@agentstack/core';
import { dollars } from '../prices.js';
import * as s from '../schemas.js';
import { type C, type RouteKit, valid } from './kit.js';

/** Custom domains: registration, DNS verification, removal. */
export function mountDomainRoutes(kit: RouteKit): void {
  const { app, routes, paid, payer, deps } = kit;
  const { prices, domains } = deps;
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
}
