import { type CoreVariables, fromZodError, invalidRequest, type Logger, type RouteSpec } from '@agentstack/core';
import type { PaidRouteOptions, PaidVariables, PaymentGate } from '@agentstack/x402';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { validator } from 'hono/validator';
import type { z } from 'zod';
import type { MailBackend } from '../backend.js';
import type { DomainRow, MailboxRow } from '../db.js';
import type { Domains } from '../domains.js';
import type { Mailboxes } from '../mailboxes.js';
import type { Prices } from '../prices.js';
import { mailboxParams } from '../schemas.js';
import type { Sender, SendRequest } from '../sending.js';
import type { WebhookStore } from '../webhooks/outbox.js';

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

export type C = Context<{ Variables: RelayVariables }>;

/** Reads what a validator stored, typed by its schema (Hono's own typing does not survive our route table). */
export const valid = <T extends z.ZodType>(c: C, target: 'json' | 'query' | 'param', _schema: T): z.output<T> =>
  (c.req.valid as (t: string) => unknown)(target) as z.output<T>;

/** A JSON body that may be left out entirely (`POST /v1/mailboxes` with no body means all defaults). */
export function optionalJson<T extends z.ZodType>(schema: T): MiddlewareHandler {
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

/** What every route module gets: the app, the route table for the documents, and the shared helpers. */
export interface RouteKit {
  app: Hono<{ Variables: RelayVariables }>;
  deps: RelayAppDeps;
  routes: RouteSpec[];
  paid(options: PaidRouteOptions): MiddlewareHandler;
  payer(c: C): `0x${string}`;
  /** The caller's live mailbox from the `:id` path parameter (404 / 403 otherwise), kept on the context. */
  ownedMailbox(c: C): Promise<MailboxRow>;
}

export function routeKit(app: Hono<{ Variables: RelayVariables }>, deps: RelayAppDeps): RouteKit {
  const payer = (c: C) => c.get('payer');
  return {
    app,
    deps,
    routes: [],
    paid: (options) => deps.gate.paid(options) as unknown as MiddlewareHandler,
    payer,
    async ownedMailbox(c) {
      const row = await deps.mailboxes.getOwned(payer(c), valid(c, 'param', mailboxParams).id);
      c.set('mailbox', row);
      return row;
    },
  };
}
