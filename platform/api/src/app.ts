import {
  AppError,
  bodyLimit,
  buildOpenApi,
  conflict,
  decodeCursor,
  errorHandler,
  formatMicros,
  invalidRequest,
  isId,
  type Logger,
  notFoundHandler,
  paginationQuery,
  parseDollarsToMicros,
  type RouteSpec,
  requestLogger,
  toPage,
  upstreamUnavailable,
  validate,
} from '@agentstack/core';
import { sql } from '@agentstack/db';
import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { type Auth, COOKIE_PREFIX, OIDC_PROVIDER_ID, usesSecureCookies } from './auth.js';
import type { ChatRelay } from './chat.js';
import { CHAT_ROUTES, registerChatRoutes } from './chat-routes.js';
import type { PlatformConfig } from './config.js';
import type { Conversations } from './conversations.js';
import type { Executor } from './db.js';
import {
  adminOnly,
  authenticate,
  authRoutes,
  clientAddress,
  only,
  type PlatformEnv,
  sameOriginForCookies,
  trustedProxyList,
} from './middleware.js';
import { publicModel } from './models.js';
import type { TenantRuntimes } from './runtimes.js';
import type { ServiceTokens } from './service-token.js';
import type { CreditsRow, LedgerRow, PlatformStore, TenantRow } from './store.js';
import type { TenantLifecycle } from './tenants.js';

export interface AppDeps {
  config: PlatformConfig;
  log: Logger;
  db: Executor;
  store: PlatformStore;
  auth: Auth;
  serviceTokens: ServiceTokens;
  lifecycle: TenantLifecycle;
  conversations: Conversations;
  chat: ChatRelay;
  /** Null when no runtime backend is configured (chat then answers 503 runtime_unavailable). */
  runtimes: TenantRuntimes | null;
}

// ---- request and response shapes (validate the request and document the API from one place) ------------

const tenantIdParam = z.object({
  id: z.string().refine((v) => isId('ten', v), 'expected a tenant id (ten_…)'),
});
const conversationIdParam = z.object({
  id: z.string().refine((v) => isId('cnv', v), 'expected a conversation id (cnv_…)'),
});
const deleteAccountBody = z.object({
  confirm: z.string().min(1, 'type the account email to confirm'),
});
const suspendBody = z.object({ reason: z.string().trim().max(500).optional() });
const grantBody = z.object({
  amount: z.string().transform((value, ctx) => {
    try {
      const micros = parseDollarsToMicros(value);
      if (micros <= 0n) ctx.addIssue({ code: 'custom', message: 'amount must be greater than zero' });
      else if (micros > 100_000_000_000n) ctx.addIssue({ code: 'custom', message: 'amount must be at most 100000.00' });
      return micros;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  }),
  memo: z.string().trim().max(500).optional(),
});
const adminTenantsQuery = paginationQuery.extend({
  status: z.enum(['active', 'paused', 'suspended']).optional(),
});
const conversationBody = z.object({ title: z.string().trim().max(200).default('') });
const renameBody = z.object({ title: z.string().trim().max(200) });
const messageBody = z.object({
  role: z.enum(['user', 'assistant', 'system', 'tool']),
  content: z.string().max(200_000),
  channel: z.enum(['web', 'telegram', 'whatsapp']).default('web'),
  metadata: z.record(z.string(), z.unknown()).default({}),
});
const serviceTokenBody = z.object({
  subject: z
    .string()
    .regex(/^[a-z][a-z0-9:._-]{0,63}$/)
    .default('runtime'),
});

const money = (micros: bigint) => ({ amount: formatMicros(micros), micros: micros.toString() });

const creditsJson = (credits: CreditsRow | undefined) => ({
  balance: formatMicros(credits?.balance_micros ?? 0n),
  balanceMicros: (credits?.balance_micros ?? 0n).toString(),
  freeCreditUsed: credits?.free_credit_used ?? false,
});

const tenantJson = (tenant: TenantRow, credits: CreditsRow | undefined) => ({
  id: tenant.id,
  status: tenant.status,
  statusReason: tenant.status_reason,
  runtimeId: tenant.runtime_id,
  createdAt: tenant.created_at.toISOString(),
  credits: creditsJson(credits),
});

const ledgerJson = (row: LedgerRow) => ({
  id: row.id.toString(),
  kind: row.kind,
  amount: money(row.amount_micros),
  balanceAfter: money(row.balance_after_micros),
  reference: row.reference,
  memo: row.memo,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
});

export const ROUTES: RouteSpec[] = [
  { method: 'get', path: '/api/health', summary: 'Liveness and database reachability', auth: 'anyone' },
  {
    method: 'get',
    path: '/api/public/models',
    summary: 'Enabled models and their prices per million tokens',
    auth: 'anyone',
  },
  { method: 'get', path: '/api/public/auth-providers', summary: 'Sign-in methods configured here', auth: 'anyone' },
  { method: 'get', path: '/api/public/openapi.json', summary: 'This document', auth: 'anyone' },
  {
    method: 'post',
    path: '/api/auth/*',
    summary: 'Better Auth: sign-up, sign-in, OAuth, two-factor, sessions, admin',
    description: 'Better Auth 1.7.7 wire format (use its client SDK with baseURL <origin> and basePath /api/auth).',
    auth: 'anyone',
  },
  { method: 'get', path: '/api/account', summary: 'The signed-in user, their tenant and credits', auth: 'session' },
  {
    method: 'delete',
    path: '/api/account',
    summary: 'Delete the account: runtime, workspace, conversations, keys, credits, user',
    auth: 'session',
    body: deleteAccountBody,
    responseStatus: 200,
  },
  { method: 'get', path: '/api/tenant', summary: "The caller's tenant", auth: 'session or service token' },
  { method: 'get', path: '/api/credits', summary: 'Credit balance', auth: 'session or service token' },
  {
    method: 'get',
    path: '/api/credits/ledger',
    summary: 'Every balance change, newest first',
    auth: 'session or service token',
    query: paginationQuery,
  },
  {
    method: 'get',
    path: '/api/conversations',
    summary: 'Conversations, most recent first',
    auth: 'session or service token',
    query: paginationQuery,
  },
  {
    method: 'post',
    path: '/api/conversations',
    summary: 'Start a conversation',
    auth: 'session or service token',
    body: conversationBody,
  },
  {
    method: 'get',
    path: '/api/conversations/:id',
    summary: 'One conversation',
    params: conversationIdParam,
    auth: 'session or service token',
  },
  {
    method: 'patch',
    path: '/api/conversations/:id',
    summary: 'Rename a conversation',
    params: conversationIdParam,
    body: renameBody,
    auth: 'session or service token',
  },
  {
    method: 'delete',
    path: '/api/conversations/:id',
    summary: 'Delete a conversation and its messages',
    params: conversationIdParam,
    auth: 'session or service token',
    responseStatus: 204,
  },
  {
    method: 'get',
    path: '/api/conversations/:id/messages',
    summary: 'Messages, oldest first',
    params: conversationIdParam,
    query: paginationQuery,
    auth: 'session or service token',
  },
  {
    method: 'post',
    path: '/api/conversations/:id/messages',
    summary: 'Record a message (runtimes and channels)',
    params: conversationIdParam,
    body: messageBody,
    auth: 'service token',
  },
  {
    method: 'post',
    path: '/api/service-tokens',
    summary: 'Exchange a tenant API key for a short-lived service token',
    body: serviceTokenBody,
    auth: 'tenant API key',
  },
  {
    method: 'get',
    path: '/api/admin/tenants',
    summary: 'Tenants, newest first',
    query: adminTenantsQuery,
    auth: 'admin session',
  },
  {
    method: 'post',
    path: '/api/admin/tenants/:id/suspend',
    summary: 'Suspend a tenant (signs its user out, stops its runtime)',
    params: tenantIdParam,
    body: suspendBody,
    auth: 'admin session',
    responseStatus: 200,
  },
  {
    method: 'post',
    path: '/api/admin/tenants/:id/unsuspend',
    summary: 'Lift a suspension',
    params: tenantIdParam,
    auth: 'admin session',
    responseStatus: 200,
  },
  {
    method: 'post',
    path: '/api/admin/tenants/:id/credits',
    summary: 'Grant credits (a ledger row)',
    params: tenantIdParam,
    body: grantBody,
    auth: 'admin session',
    idempotent: true,
  },
  {
    method: 'delete',
    path: '/api/admin/tenants/:id',
    summary: 'Delete a tenant and its user',
    params: tenantIdParam,
    auth: 'admin session',
    responseStatus: 200,
  },
];

const isPublicRoute = (c: Context) => {
  const { path, method } = c.req;
  if (path.startsWith('/api/auth/') || path === '/api/auth') return true;
  const read = method === 'GET' || method === 'HEAD';
  return read && (path === '/api/health' || path.startsWith('/api/public/'));
};

/** The platform API (HTTP only; the logic lives in the modules it is handed). */
export function createApp(deps: AppDeps): Hono<PlatformEnv> {
  const { config, store, auth, lifecycle, conversations } = deps;
  const app = new Hono<PlatformEnv>();
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);
  app.use('*', requestLogger(deps.log));
  app.use('/api/*', clientAddress(trustedProxyList(config.PLATFORM_TRUSTED_PROXIES)));
  app.use('/api/*', sameOriginForCookies(config.trustedOrigins));
  // Uploads have their own, larger limit (chat-routes.ts).
  app.use('/api/*', (c, next) => (c.req.path === '/api/files' ? next() : bodyLimit(1_000_000)(c, next)));
  app.use('/api/*', authenticate(deps, isPublicRoute));

  // ---- public ------------------------------------------------------------------------------------
  app.get('/api/health', async (c) => {
    try {
      await sql`select 1`.execute(deps.db);
    } catch {
      throw upstreamUnavailable('database unreachable');
    }
    return c.json({ status: 'ok', service: 'platform-api' });
  });

  app.get('/api/public/models', async (c) => {
    const models = await store.listModels({ enabledOnly: true });
    c.header('Cache-Control', 'public, max-age=60');
    return c.json({ items: models.map(publicModel) });
  });

  app.get('/api/public/auth-providers', (c) =>
    c.json({
      emailPassword: true,
      twoFactor: ['totp'],
      social: config.socialProviders.map((p) => p.id),
      ...(config.oidc ? { oidc: { id: OIDC_PROVIDER_ID, name: config.oidc.name } } : {}),
    }),
  );

  const openApi = buildOpenApi(
    {
      title: 'AgentSquads platform API',
      version: '1',
      description: 'Accounts, tenants, credits and conversations of AgentSquads. Money is in micro-dollars.',
    },
    [...ROUTES, ...CHAT_ROUTES],
  );
  app.get('/api/public/openapi.json', (c) => c.json(openApi));

  app.on(['GET', 'POST'], '/api/auth/*', authRoutes(auth));

  // ---- the signed-in user ------------------------------------------------------------------------
  app.get('/api/account', only('user'), async (c) => {
    const caller = c.get('caller');
    if (caller.kind !== 'user') throw new Error('unreachable');
    const { user } = caller;
    const tenant = c.get('tenant');
    return c.json({
      user: {
        id: user.id,
        name: user.name,
        email: user.email,
        emailVerified: user.emailVerified,
        image: user.image ?? null,
        role: user.role ?? 'user',
        twoFactorEnabled: user.twoFactorEnabled ?? false,
        signupProvider: (user as { signupProvider?: string | null }).signupProvider ?? null,
        createdAt: new Date(user.createdAt).toISOString(),
      },
      impersonatedBy: caller.session.impersonatedBy ?? null,
      tenant: tenantJson(tenant, await store.findCredits(tenant.id)),
    });
  });

  app.delete('/api/account', only('user'), validate('json', deleteAccountBody), async (c) => {
    const caller = c.get('caller');
    if (caller.kind !== 'user') throw new Error('unreachable');
    const { confirm } = c.req.valid('json');
    if (confirm.trim().toLowerCase() !== caller.user.email.toLowerCase()) {
      throw invalidRequest('body.confirm: type the account email to confirm', 'body.confirm');
    }
    if (caller.session.impersonatedBy) {
      throw new AppError('forbidden', 'an impersonation session cannot delete the account', 403);
    }
    const { tenantId } = await lifecycle.deleteAccount(caller.user.id, 'user_deleted');
    expireSessionCookies(c, usesSecureCookies(config));
    return c.json({ deleted: true, tenantId });
  });

  // ---- the caller's tenant (users, and components holding a service token) ------------------------
  const tenantCallers = only('user', 'service');

  app.get('/api/tenant', tenantCallers, async (c) => {
    const tenant = c.get('tenant');
    return c.json(tenantJson(tenant, await store.findCredits(tenant.id)));
  });

  app.get('/api/credits', tenantCallers, async (c) => c.json(creditsJson(await store.findCredits(c.get('tenant').id))));

  app.get('/api/credits/ledger', tenantCallers, validate('query', paginationQuery), async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const position = decodeCursor(cursor, z.object({ id: z.string().regex(/^\d+$/) }));
    const rows = await store.listLedger(c.get('tenant').id, {
      limit,
      ...(position ? { beforeId: BigInt(position.id) } : {}),
    });
    return c.json(toPage(rows, limit, ledgerJson, (row) => ({ id: row.id.toString() })));
  });

  app.get('/api/conversations', tenantCallers, validate('query', paginationQuery), async (c) => {
    const { limit, cursor } = c.req.valid('query');
    return c.json(await conversations.list(c.get('tenant').id, { limit, ...(cursor ? { cursor } : {}) }));
  });

  app.post('/api/conversations', tenantCallers, validate('json', conversationBody), async (c) => {
    return c.json(await conversations.create(c.get('tenant').id, c.req.valid('json').title), 201);
  });

  app.get('/api/conversations/:id', tenantCallers, validate('param', conversationIdParam), async (c) =>
    c.json(await conversations.get(c.get('tenant').id, c.req.valid('param').id)),
  );

  app.patch(
    '/api/conversations/:id',
    tenantCallers,
    validate('param', conversationIdParam),
    validate('json', renameBody),
    async (c) =>
      c.json(await conversations.rename(c.get('tenant').id, c.req.valid('param').id, c.req.valid('json').title)),
  );

  app.delete('/api/conversations/:id', tenantCallers, validate('param', conversationIdParam), async (c) => {
    await conversations.delete(c.get('tenant').id, c.req.valid('param').id);
    return c.body(null, 204);
  });

  app.get(
    '/api/conversations/:id/messages',
    tenantCallers,
    validate('param', conversationIdParam),
    validate('query', paginationQuery),
    async (c) => {
      const { limit, cursor } = c.req.valid('query');
      return c.json(
        await conversations.messages(c.get('tenant').id, c.req.valid('param').id, {
          limit,
          ...(cursor ? { cursor } : {}),
        }),
      );
    },
  );

  // Messages are written by the components that carry them (the runtime relay, channels); people send
  // theirs through chat, which persists both sides.
  app.post(
    '/api/conversations/:id/messages',
    only('service'),
    validate('param', conversationIdParam),
    validate('json', messageBody),
    async (c) =>
      c.json(await conversations.append(c.get('tenant').id, c.req.valid('param').id, c.req.valid('json')), 201),
  );

  registerChatRoutes(app, {
    chat: deps.chat,
    runtimes: deps.runtimes,
    tenantDataDir: config.tenantDataDir,
    log: deps.log,
  });

  // ---- a tenant runtime trading its API key for a short-lived token --------------------------------
  app.post('/api/service-tokens', only('apiKey'), validate('json', serviceTokenBody), async (c) => {
    const tenant = c.get('tenant');
    const { token, expiresAt } = await deps.serviceTokens.mint({
      tenantId: tenant.id,
      subject: c.req.valid('json').subject,
    });
    c.header('Cache-Control', 'no-store');
    return c.json({ token, tokenType: 'Bearer', tenantId: tenant.id, expiresAt: expiresAt.toISOString() }, 201);
  });

  // ---- admins ------------------------------------------------------------------------------------
  const admins = [only('user'), adminOnly()] as const;
  const adminId = (c: Context<PlatformEnv>) => {
    const caller = c.get('caller');
    return caller.kind === 'user' ? caller.user.id : 'unknown';
  };

  app.get('/api/admin/tenants', ...admins, validate('query', adminTenantsQuery), async (c) => {
    const { limit, cursor, status } = c.req.valid('query');
    const position = decodeCursor(cursor, z.object({ c: z.string(), i: z.string() }));
    const rows = await store.listTenants({
      limit,
      ...(status ? { status } : {}),
      ...(position ? { before: { createdAt: position.c, id: position.i } } : {}),
    });
    return c.json(
      toPage(
        rows,
        limit,
        (row) => ({
          id: row.id,
          userId: row.user_id,
          email: row.email,
          status: row.status,
          statusReason: row.status_reason,
          runtimeId: row.runtime_id,
          banned: row.banned,
          balance: money(row.balance_micros ?? 0n),
          createdAt: row.created_at.toISOString(),
        }),
        (row) => ({ c: row.created_at.toISOString(), i: row.id }),
      ),
    );
  });

  app.post(
    '/api/admin/tenants/:id/suspend',
    ...admins,
    validate('param', tenantIdParam),
    validate('json', suspendBody),
    async (c) => {
      const tenant = await lifecycle.suspend(c.req.valid('param').id, {
        reason: c.req.valid('json').reason || null,
        by: adminId(c),
      });
      return c.json(tenantJson(tenant, await store.findCredits(tenant.id)));
    },
  );

  app.post('/api/admin/tenants/:id/unsuspend', ...admins, validate('param', tenantIdParam), async (c) => {
    const tenant = await lifecycle.unsuspend(c.req.valid('param').id, { by: adminId(c) });
    return c.json(tenantJson(tenant, await store.findCredits(tenant.id)));
  });

  app.post(
    '/api/admin/tenants/:id/credits',
    ...admins,
    validate('param', tenantIdParam),
    validate('json', grantBody),
    async (c) => {
      const { amount, memo } = c.req.valid('json');
      const key = c.req.header('idempotency-key');
      if (key !== undefined && !/^[A-Za-z0-9._:-]{8,100}$/.test(key)) {
        throw invalidRequest(
          'Idempotency-Key must be 8–100 characters of A-Z a-z 0-9 . _ : -',
          'header.idempotency-key',
        );
      }
      const { entry, created } = await lifecycle.grantCredits(c.req.valid('param').id, {
        amountMicros: amount,
        memo: memo || null,
        by: adminId(c),
        ...(key ? { idempotencyKey: `idem:${key}` } : {}),
      });
      if (!created && (entry.amount_micros !== amount || entry.memo !== (memo || null))) {
        throw conflict('this Idempotency-Key was used for a different grant');
      }
      return c.json(ledgerJson(entry), created ? 201 : 200);
    },
  );

  app.delete('/api/admin/tenants/:id', ...admins, validate('param', tenantIdParam), async (c) => {
    const tenant = await store.findTenant(c.req.valid('param').id);
    if (!tenant) throw new AppError('not_found', 'tenant not found', 404);
    await lifecycle.deleteAccount(tenant.user_id, 'admin_deleted');
    return c.json({ deleted: true, tenantId: tenant.id });
  });

  return app;
}

/** Clears Better Auth's cookies after the account (and so its sessions) is gone. */
function expireSessionCookies(c: Context, secure: boolean): void {
  const prefix = secure ? `__Secure-${COOKIE_PREFIX}` : COOKIE_PREFIX;
  for (const name of ['session_token', 'session_data', 'dont_remember']) {
    c.header('Set-Cookie', `${prefix}.${name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`, {
      append: true,
    });
  }
}
