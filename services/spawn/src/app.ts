import { createHash, timingSafeEqual } from 'node:crypto';
import {
  type ApiInfo,
  AppError,
  buildLlmsTxt,
  buildOpenApi,
  type Clock,
  type CoreVariables,
  decodeCursor,
  errorHandler,
  formatUsdc,
  type Logger,
  notFoundHandler,
  paginationQuery,
  type RouteSpec,
  requestLogger,
  toPage,
  usdcAmountSchema,
  validate,
} from '@agentstack/core';
import {
  type CallerVariables,
  type PaidVariables,
  type PaymentGate,
  SIGNED_REQUEST_GUIDE,
  signedRequest,
  type X402Store,
} from '@agentstack/x402';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import type { Catalog } from './catalog.js';
import { keyView, type SshKeys } from './keys.js';
import type { Ledger } from './ledger.js';
import { SERVER_STATUSES } from './providers/provider.js';
import type { ReconcileReport } from './reconcile.js';
import { actionView, type Servers, serverView } from './servers.js';
import { keysSql, serversSql } from './store.js';
import type { Sweeper } from './sweeper.js';
import { checkWebhookUrl } from './webhooks.js';

export interface AppDeps {
  gate: PaymentGate;
  x402Store: X402Store;
  servers: Servers;
  keys: SshKeys;
  ledger: Ledger;
  sweeper: Sweeper;
  catalog: Catalog;
  clock: Clock;
  log: Logger;
  /** Allow webhook URLs on private addresses (local development and tests only). */
  allowPrivateWebhooks: boolean;
  reconcile: () => Promise<ReconcileReport>;
  /** Operator token for POST /v1/admin/reconcile; without one the route does not exist. */
  adminToken?: string | undefined;
}

type Vars = CoreVariables & PaidVariables & CallerVariables;

// ---- request and response shapes (they validate, and generate /openapi.json and /llms.txt) ----

const serverName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'a hostname: lowercase letters, digits and -, 1-63 characters, not starting or ending with -',
  );
const serverId = z.object({ id: z.string().regex(/^srv_[0-9A-Za-z]{22}$/, 'expected a server id (srv_…)') });
const actionId = z.object({ id: z.string().regex(/^act_[0-9A-Za-z]{22}$/, 'expected an action id (act_…)') });
const keyId = z.object({ id: z.string().regex(/^key_[0-9A-Za-z]{22}$/, 'expected an SSH key id (key_…)') });

const createServerBody = z
  .object({
    name: serverName,
    type: z.string().min(1).max(32),
    image: z.string().min(1).max(64),
    location: z.string().min(1).max(32).optional(),
    ssh_keys: z.array(z.string().min(1).max(64)).max(20).optional(),
    user_data: z
      .string()
      .max(32 * 1024, 'at most 32 KiB')
      .optional(),
    webhook: z
      .object({
        url: z.url().max(2000),
        secret: z.string().min(16, 'at least 16 characters').max(200),
      })
      .optional(),
  })
  .strict();
const resizeBody = z.object({ type: z.string().min(1).max(32), upgrade_disk: z.boolean().optional() }).strict();
const rebuildBody = z.object({ image: z.string().min(1).max(64) }).strict();
const keyBody = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'letters, digits and . _ @ -, at most 64'),
    public_key: z.string().min(1).max(16_384),
  })
  .strict();
const depositBody = z.object({ amount: usdcAmountSchema() }).strict();
const listQuery = paginationQuery.extend({ status: z.enum(SERVER_STATUSES).optional() });
const cursorShape = z.object({ c: z.string(), i: z.string() });

const money = z.string().describe('USDC decimal string');
const serverSchema = z.object({
  id: z.string(),
  name: z.string(),
  status: z.enum(SERVER_STATUSES),
  type: z.string(),
  image: z.string(),
  location: z.string(),
  provider: z.string(),
  cores: z.number(),
  memory_gb: z.number(),
  disk_gb: z.number(),
  public_net: z.object({ ipv4: z.string().nullable(), ipv6: z.string().nullable() }),
  ssh: z.object({ host: z.string(), port: z.number(), user: z.string() }).nullable(),
  deposit: z.object({
    remaining: money,
    remaining_atomic: z.string(),
    burn_per_day: money,
    burn_per_day_atomic: z.string(),
    expires_at: z.string().nullable(),
    auto_destroy_at: z.string().nullable(),
  }),
  labels: z.record(z.string(), z.string()),
  created_at: z.string(),
  destroyed_at: z.string().nullable(),
});
const actionSchema = z.object({
  id: z.string(),
  command: z.string(),
  status: z.enum(['running', 'success', 'error']),
  progress: z.number(),
  server_id: z.string(),
  started_at: z.string(),
  finished_at: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  root_password: z.string().optional(),
});
const keySchema = z.object({
  id: z.string(),
  name: z.string(),
  fingerprint: z.string(),
  fingerprint_md5: z.string(),
  type: z.string(),
  public_key: z.string(),
  created_at: z.string(),
});
const balanceSchema = z.object({
  balance: money,
  reserved: money,
  available: money,
  balance_atomic: z.string(),
  reserved_atomic: z.string(),
  available_atomic: z.string(),
});

function balanceView(b: { available: bigint; reserved: bigint }) {
  return {
    balance: formatUsdc(b.available + b.reserved),
    reserved: formatUsdc(b.reserved),
    available: formatUsdc(b.available),
    balance_atomic: (b.available + b.reserved).toString(),
    reserved_atomic: b.reserved.toString(),
    available_atomic: b.available.toString(),
  };
}

export function routeSpecs(catalog: Catalog): RouteSpec[] {
  const price = (atomic: bigint) => `$${formatUsdc(atomic)}`;
  const p = catalog.prices;
  return [
    {
      method: 'get',
      path: '/v1/health',
      summary: 'Liveness, and whether the compute provider can serve',
      auth: 'anyone',
    },
    {
      method: 'post',
      path: '/v1/servers',
      summary: 'Create a server; its deposit is reserved from your spawn balance',
      description:
        '201 {server, action, deposit_charged, deposit_remaining}: `deposit_remaining` is your available spawn balance after the reservation. 422 insufficient_deposit when it is short; 422 naming what the provider offers for an unknown type/image/location; 409 when you already have a server with that name. The server starts `initializing`; poll the action.',
      price: price(p.createServer),
      settlement: 'first',
      auth: 'x402 payer (becomes the owner)',
      idempotent: true,
      body: createServerBody,
      response: z.object({
        server: serverSchema,
        action: actionSchema,
        deposit_charged: money,
        deposit_charged_atomic: z.string(),
        deposit_remaining: money,
        deposit_remaining_atomic: z.string(),
      }),
    },
    {
      method: 'get',
      path: '/v1/servers',
      summary: 'Your servers, newest first (destroyed ones only with ?status=destroyed)',
      price: price(p.listServers),
      settlement: 'after-success',
      auth: 'x402 payer',
      query: listQuery,
      response: z.object({ servers: z.array(serverSchema), next_cursor: z.string().nullable() }),
    },
    {
      method: 'get',
      path: '/v1/servers/:id',
      summary: 'One server: status, IPs, SSH endpoint, cores, memory, disk, deposit remaining and its expiry',
      price: price(p.getServer),
      settlement: 'after-success',
      auth: 'x402 payer (owner)',
      params: serverId,
      response: z.object({ server: serverSchema }),
    },
    {
      method: 'delete',
      path: '/v1/servers/:id',
      summary: 'Destroy a server; its unused deposit returns to your available balance when the action finishes',
      price: price(p.deleteServer),
      settlement: 'first',
      auth: 'x402 payer (owner)',
      idempotent: true,
      params: serverId,
      responseStatus: 200,
      response: z.object({ server: serverSchema, action: actionSchema, deposit_refund: money }),
    },
    ...(['start', 'stop', 'reboot'] as const).map(
      (command): RouteSpec => ({
        method: 'post',
        path: `/v1/servers/:id/${command}`,
        summary:
          command === 'start'
            ? 'Power on a server that is off'
            : command === 'stop'
              ? 'Graceful shutdown (the server stays, and keeps burning its deposit, while off)'
              : 'Reboot a running server',
        price: price(p.powerAction),
        settlement: 'first',
        auth: 'x402 payer (owner)',
        idempotent: true,
        params: serverId,
        response: z.object({ server: serverSchema, action: actionSchema }),
      }),
    ),
    {
      method: 'post',
      path: '/v1/servers/:id/resize',
      summary: 'Change the type: stops the server first if it runs and starts it again after; the disk never shrinks',
      description:
        'The disk grows to the new type only with upgrade_disk: true (then the server can never go back to a smaller disk). A type with a larger deposit reserves the difference from your available balance.',
      price: price(p.resize),
      settlement: 'first',
      auth: 'x402 payer (owner)',
      idempotent: true,
      params: serverId,
      body: resizeBody,
      response: z.object({ server: serverSchema, action: actionSchema }),
    },
    {
      method: 'post',
      path: '/v1/servers/:id/rebuild',
      summary: 'Reinstall from an image: the disk is wiped, the SSH keys are applied again, user_data runs again',
      price: price(p.rebuild),
      settlement: 'first',
      auth: 'x402 payer (owner)',
      idempotent: true,
      params: serverId,
      body: rebuildBody,
      response: z.object({ server: serverSchema, action: actionSchema }),
    },
    {
      method: 'get',
      path: '/v1/actions/:id',
      summary: 'Status of an asynchronous action: running, success or error',
      description: 'A Hetzner root password generated for a server created without SSH keys is returned here once.',
      auth: 'signed request (the owner)',
      params: actionId,
      response: z.object({ action: actionSchema }),
    },
    {
      method: 'post',
      path: '/v1/ssh-keys',
      summary: 'Register an OpenSSH public key (ed25519, ecdsa, rsa ≥ 2048 bits); the fingerprint is returned',
      price: price(p.sshKey),
      settlement: 'after-success',
      auth: 'x402 payer (becomes the owner)',
      idempotent: true,
      body: keyBody,
      response: z.object({ ssh_key: keySchema }),
    },
    {
      method: 'get',
      path: '/v1/ssh-keys',
      summary: 'Your SSH keys',
      price: price(p.sshKey),
      settlement: 'after-success',
      auth: 'x402 payer',
      query: paginationQuery,
      response: z.object({ ssh_keys: z.array(keySchema), next_cursor: z.string().nullable() }),
    },
    {
      method: 'delete',
      path: '/v1/ssh-keys/:id',
      summary: 'Delete an SSH key (servers already created with it keep it)',
      price: price(p.sshKey),
      settlement: 'first',
      auth: 'x402 payer (owner)',
      idempotent: true,
      params: keyId,
      responseStatus: 200,
      response: z.object({ ssh_key: keySchema }),
    },
    {
      method: 'post',
      path: '/v1/balance/deposit',
      summary: 'Add to your spawn balance: the x402 payment is the amount',
      description:
        'Several payments add up: default x402 clients cap one payment at $1, so either raise your client’s spendControls or deposit in steps.',
      price: 'the amount',
      settlement: 'first',
      auth: 'x402 payer (the balance is the payer’s)',
      idempotent: true,
      body: depositBody,
      responseStatus: 200,
      response: z.object({ deposited: money, deposited_atomic: z.string(), ...balanceSchema.shape }),
    },
    {
      method: 'get',
      path: '/v1/balance',
      summary: 'Your spawn balance: balance = reserved (held by your servers’ deposits) + available',
      auth: 'signed request',
      response: balanceSchema,
    },
  ];
}

export function apiInfo(catalog: Catalog): ApiInfo {
  const types = Object.values(catalog.types)
    .map(
      (t) =>
        `- \`${t.slug}\`: ${t.cores} vCPU, ${t.memoryGb} GB RAM, ${t.diskGb} GB disk (${t.arch}); deposit $${formatUsdc(t.deposit)}, burn $${formatUsdc(t.burnPerDay)} per day`,
    )
    .join('\n');
  return {
    title: 'spawn.sh',
    version: '1.0.0',
    description:
      'Servers for agents: create, power, resize, rebuild and destroy machines you reach over SSH, paid per call with x402 (USDC).',
    guide: `
## How to pay

Every paid route answers an unpaid request with 402 and a PAYMENT-REQUIRED header (x402 v2, exact scheme, USDC).
Retry with PAYMENT-SIGNATURE (any x402 v2 client does this: \`@x402/fetch\`'s wrapFetchWithPayment). The payer's
address is your identity: servers, keys and the balance belong to it; another wallet gets 403.

Settlement order: routes marked "settles before the effect" (creating, destroying, power, resize, rebuild,
deposits) settle your payment first and then act; if the action is then refused (404, 409, 422, …) the route's
fee is credited to your spawn balance (the error's \`details.fee_credited\`). Other routes settle only if they
succeed. Send \`Idempotency-Key: <unique>\` on every mutating call: a retry returns the first answer and is never
charged twice.

## Deposits and burn

A server's type has a deposit, reserved from your available spawn balance when you create it (422
insufficient_deposit when short), and a daily burn charged from that deposit once per UTC day. Top up your
balance with POST /v1/balance/deposit {"amount": "5.00"}: the payment is the amount. Default x402 clients refuse
payments above $1: either raise the limit (\`@x402/fetch\`: client.setSpendControls({ maxAmountPerPayment: … })) or
deposit in several payments, which add up. When a server's deposit falls below ${catalog.warnDays} days of burn it is
refilled from your available balance; if that is empty you get a \`server.low_balance\` webhook. When the deposit is
used up the server is scheduled for destruction ${catalog.graceHours} h later (\`server.auto_destroy_scheduled\`
webhook, \`deposit.auto_destroy_at\` on the server); a deposit before then cancels it. Destroying a server returns
its unused deposit to your available balance.

Types:
${types}

## Free routes that need a caller (GET /v1/balance, GET /v1/actions/:id)

${SIGNED_REQUEST_GUIDE}

## Servers

POST /v1/servers {"name": "web-1", "type": "small", "image": "debian-12", "ssh_keys": ["key_…"]} answers at once
with the server \`initializing\` and an action; poll GET /v1/actions/:id until \`success\`, then GET the server for
\`ssh: {host, port, user}\` and connect: \`ssh -p <port> <user>@<host>\`. \`user_data\` (cloud-init on Hetzner; a
shell script on the local provider) runs once at first boot. Statuses: initializing, running, stopping, off,
destroying, migrating, rebuilding, unknown (and destroyed). One action at a time per server (409 otherwise).
Optional \`webhook: {"url", "secret"}\` receives low-balance and auto-destroy warnings, signed:
\`X-Spawn-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>\`.

Providers: on \`local\` (the default of a development stack) each server is a sandbox on the spawn host: the
image is the host's \`debian-12\` userland, location \`local\`, login \`root\` (an unprivileged uid of its own, no
network access); unknown types, images or locations are refused with 422 naming what is offered. On \`hetzner\`
servers are Hetzner Cloud machines (types map to cx23/cx33/cx43/cax11).
`,
  };
}

/**
 * Settle-first routes: when the handler refuses after the payment settled, the fee goes to the caller's
 * spawn balance and the error says so.
 */
function creditFeeOnFailure(ledger: Ledger): MiddlewareHandler<{ Variables: Vars }> {
  return async (c, next) => {
    await next();
    if (c.res.status < 400) return;
    const payment = c.get('payment');
    if (!payment?.transaction) return;
    const { credited } = await ledger.creditFee(payment.payer, payment.amount, `fee:${payment.transaction}`);
    if (!credited) return;
    const body = (await c.res
      .clone()
      .json()
      .catch(() => undefined)) as { error?: Record<string, unknown> } | undefined;
    if (!body?.error) return;
    body.error.details = { ...(body.error.details as object), fee_credited: formatUsdc(payment.amount) };
    const status = c.res.status;
    c.res = undefined as unknown as Response;
    c.res = new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  };
}

export function createApp(deps: AppDeps) {
  const { gate, servers, keys, ledger, catalog } = deps;
  const app = new Hono<{ Variables: Vars }>();
  app.use('*', requestLogger(deps.log));
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);
  const specs = routeSpecs(catalog);
  const info = apiInfo(catalog);
  const openApi = buildOpenApi(info, specs);
  const llms = buildLlmsTxt(info, specs);
  const now = () => deps.clock.now();
  const fee = creditFeeOnFailure(ledger);
  const signed = signedRequest({ store: deps.x402Store, clock: deps.clock });

  app.get('/openapi.json', (c) => c.json(openApi));
  app.get('/llms.txt', (c) => c.text(llms));
  app.get('/v1/health', (c) => {
    const reason = servers.providerUnavailable();
    return c.json({
      status: 'ok',
      provider: servers.providerName(),
      provider_available: !reason,
      ...(reason ? { reason } : {}),
    });
  });

  // Checks that need no caller run before the payment, so a request that cannot succeed is never charged.
  const precheckCreate: MiddlewareHandler = async (c, next) => {
    const body = (c.req.valid as (t: 'json') => z.infer<typeof createServerBody>)('json');
    servers.precheckCreate(body);
    if (body.webhook) {
      const refused = await checkWebhookUrl(body.webhook.url, deps.allowPrivateWebhooks);
      if (refused) throw new AppError('invalid_request', `webhook url ${refused}`, 400, { field: 'body.webhook.url' });
    }
    await next();
  };

  app.post(
    '/v1/servers',
    validate('json', createServerBody),
    precheckCreate,
    gate.paid({ price: catalog.prices.createServer, settle: 'first' }),
    fee,
    async (c) => {
      const body = c.req.valid('json');
      const { row, action, balance } = await servers.create(c.get('payer'), body);
      const type = catalog.types[row.type];
      return c.json(
        {
          server: serverView(row, now()),
          action: actionView(action),
          deposit_charged: formatUsdc(type?.deposit ?? 0n),
          deposit_charged_atomic: String(type?.deposit ?? 0n),
          deposit_remaining: formatUsdc(balance.available),
          deposit_remaining_atomic: balance.available.toString(),
        },
        201,
      );
    },
  );

  app.get(
    '/v1/servers',
    validate('query', listQuery),
    gate.paid({ price: catalog.prices.listServers, settle: 'after-success' }),
    async (c) => {
      const query = c.req.valid('query');
      const after = decodeCursor(query.cursor, cursorShape);
      const rows = await serversSql.list(
        servers.db,
        c.get('payer'),
        query.limit,
        query.status,
        after ? { created: after.c, id: after.i } : undefined,
      );
      const page = toPage(
        rows,
        query.limit,
        (r) => serverView(r, now()),
        (r) => ({ c: r.created_at.toISOString(), i: r.id }),
      );
      return c.json({ servers: page.items, next_cursor: page.nextCursor });
    },
  );

  app.get(
    '/v1/servers/:id',
    validate('param', serverId),
    gate.paid({ price: catalog.prices.getServer, settle: 'after-success' }),
    async (c) => {
      const row = await servers.get(c.get('payer'), c.req.valid('param').id);
      return c.json({ server: serverView(row, now()) });
    },
  );

  app.delete(
    '/v1/servers/:id',
    validate('param', serverId),
    gate.paid({ price: catalog.prices.deleteServer, settle: 'first' }),
    fee,
    async (c) => {
      const { row, action } = await servers.destroy(c.get('payer'), c.req.valid('param').id);
      return c.json({
        server: serverView(row, now()),
        action: actionView(action),
        deposit_refund: formatUsdc(row.deposit_remaining),
      });
    },
  );

  for (const command of ['start', 'stop', 'reboot'] as const) {
    app.post(
      `/v1/servers/:id/${command}`,
      validate('param', serverId),
      gate.paid({ price: catalog.prices.powerAction, settle: 'first' }),
      fee,
      async (c) => {
        const { row, action } = await servers.power(c.get('payer'), c.req.valid('param').id, command);
        return c.json({ server: serverView(row, now()), action: actionView(action) }, 201);
      },
    );
  }

  app.post(
    '/v1/servers/:id/resize',
    validate('param', serverId),
    validate('json', resizeBody),
    async (c, next) => {
      servers.checkOffer({ type: c.req.valid('json').type });
      await next();
    },
    gate.paid({ price: catalog.prices.resize, settle: 'first' }),
    fee,
    async (c) => {
      const { row, action } = await servers.resize(c.get('payer'), c.req.valid('param').id, c.req.valid('json'));
      return c.json({ server: serverView(row, now()), action: actionView(action) }, 201);
    },
  );

  app.post(
    '/v1/servers/:id/rebuild',
    validate('param', serverId),
    validate('json', rebuildBody),
    async (c, next) => {
      servers.checkOffer({ image: c.req.valid('json').image });
      await next();
    },
    gate.paid({ price: catalog.prices.rebuild, settle: 'first' }),
    fee,
    async (c) => {
      const { row, action } = await servers.rebuild(c.get('payer'), c.req.valid('param').id, c.req.valid('json'));
      return c.json({ server: serverView(row, now()), action: actionView(action) }, 201);
    },
  );

  app.get('/v1/actions/:id', validate('param', actionId), signed, async (c) => {
    const { row, secret } = await servers.action(c.get('caller'), c.req.valid('param').id);
    return c.json({ action: { ...actionView(row), ...(secret ? { root_password: secret } : {}) } });
  });

  app.post(
    '/v1/ssh-keys',
    validate('json', keyBody),
    gate.paid({
      price: catalog.prices.sshKey,
      settle: 'after-success',
      // The key was registered but the payment did not settle: take it back.
      onSettleFailure: async (c: Context) => {
        const id = (c.get as (k: 'createdKey') => string | undefined)('createdKey');
        if (id) await keysSql.delete(servers.db, id);
      },
    }),
    async (c) => {
      const row = await keys.register(c.get('payer'), c.req.valid('json'));
      (c.set as (k: string, v: unknown) => void)('createdKey', row.id);
      return c.json({ ssh_key: keyView(row) }, 201);
    },
  );

  app.get(
    '/v1/ssh-keys',
    validate('query', paginationQuery),
    gate.paid({ price: catalog.prices.sshKey, settle: 'after-success' }),
    async (c) => {
      const query = c.req.valid('query');
      const after = decodeCursor(query.cursor, cursorShape);
      const rows = await keysSql.list(
        servers.db,
        c.get('payer'),
        query.limit,
        after ? { created: after.c, id: after.i } : undefined,
      );
      const page = toPage(rows, query.limit, keyView, (r) => ({ c: r.created_at.toISOString(), i: r.id }));
      return c.json({ ssh_keys: page.items, next_cursor: page.nextCursor });
    },
  );

  app.delete(
    '/v1/ssh-keys/:id',
    validate('param', keyId),
    gate.paid({ price: catalog.prices.sshKey, settle: 'first' }),
    fee,
    async (c) => {
      const row = await keys.delete(c.get('payer'), c.req.valid('param').id);
      return c.json({ ssh_key: keyView(row) });
    },
  );

  app.post(
    '/v1/balance/deposit',
    validate('json', depositBody),
    gate.paid({
      price: (c) => (c.req.valid as (t: 'json') => z.output<typeof depositBody>)('json').amount,
      settle: 'first',
    }),
    async (c) => {
      const payment = c.get('payment');
      const { balance } = await ledger.deposit(payment.payer, payment.amount, `deposit:${payment.transaction}`);
      // Servers waiting to be destroyed for an empty deposit are saved at once.
      await deps.sweeper.rescue(payment.payer).catch((err) => deps.log.warn({ err }, 'rescue after deposit failed'));
      const after = await ledger.balance(payment.payer);
      void balance;
      return c.json({
        deposited: formatUsdc(payment.amount),
        deposited_atomic: payment.amount.toString(),
        ...balanceView(after),
      });
    },
  );

  app.get('/v1/balance', signed, async (c) => c.json(balanceView(await ledger.balance(c.get('caller')))));

  // Operators: reconcile with the provider now (it also runs at start and periodically).
  app.post('/v1/admin/reconcile', async (c) => {
    if (!deps.adminToken) return notFoundHandler(c);
    const given = (c.req.header('authorization') ?? '').replace(/^Bearer\s+/i, '');
    const digest = (s: string) => createHash('sha256').update(s).digest();
    if (!timingSafeEqual(digest(given), digest(deps.adminToken))) {
      throw new AppError('unauthorized', 'admin token required (Authorization: Bearer …)', 401);
    }
    return c.json(await deps.reconcile());
  });

  return app;
}
