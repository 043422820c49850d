import { buildLlmsTxt, buildOpenApi, errorHandler, notFoundHandler, requestLogger } from '@agentstack/core';
import { Hono } from 'hono';
import { llmsGuide } from './guide.js';
import { mountDomainRoutes } from './http/domains.js';
import { type RelayAppDeps, type RelayVariables, routeKit } from './http/kit.js';
import { mountMailboxRoutes } from './http/mailboxes.js';
import { mountMessageRoutes } from './http/messages.js';
import { mountWebhookRoutes } from './http/webhooks.js';
import * as s from './schemas.js';

export type { RelayAppDeps, RelayVariables } from './http/kit.js';

/**
 * relay.sh's HTTP API: every route priced and settled through the x402 gate and owned by the paying wallet,
 * one module per resource (src/http/*). The route table they fill generates /openapi.json and /llms.txt.
 */
export function relayApp(deps: RelayAppDeps) {
  const app = new Hono<{ Variables: RelayVariables }>();
  app.use('*', requestLogger(deps.log));
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);
  const kit = routeKit(app, deps);

  app.get('/v1/health', (c) =>
    c.json({
      status: 'ok' as const,
      service: 'relay' as const,
      backend: deps.backend.name,
      domains: deps.domains.serviceDomainNames,
      smtp: deps.smtpPort() ? { port: deps.smtpPort() as number } : null,
    }),
  );
  kit.routes.push({
    method: 'get',
    path: '/v1/health',
    summary: 'liveness and configuration summary',
    response: s.healthResponse,
  });

  mountMailboxRoutes(kit);
  mountMessageRoutes(kit);
  mountWebhookRoutes(kit);
  mountDomainRoutes(kit);
  if (deps.extraRoutes) kit.routes.push(...deps.extraRoutes(app));

  // discovery
  const info = {
    title: 'relay.sh',
    version: '1.0.0',
    description:
      'Email for agents: disposable and long-lived mailboxes, sending, webhooks and custom domains, paid per call with x402 (USDC on Base).',
    guide: llmsGuide({ prices: deps.prices, limits: deps.limits }),
  };
  kit.routes.push(
    { method: 'get', path: '/openapi.json', summary: 'this API as OpenAPI 3.1' },
    { method: 'get', path: '/llms.txt', summary: 'this guide' },
  );
  const openapi = buildOpenApi(info, kit.routes);
  const llms = buildLlmsTxt(info, kit.routes);
  app.get('/openapi.json', (c) => c.json(openapi));
  app.get('/llms.txt', (c) => c.text(llms));

  return { app, routes: kit.routes };
}
