import { addressSchema } from '@agentstack/chain';
import { formatUsdc, paginationQuery, parseDecimal, type RouteSpec, usdcAmountSchema } from '@agentstack/core';
import { policyInputSchema, policyJsonSchema } from '@agentstack/sdk/policy';
import { zeroAddress } from 'viem';
import { z } from 'zod';
import type { Prices } from './config.js';

/**
 * Request and response shapes of every route, written once: they validate requests and generate
 * /openapi.json and /llms.txt (the SDK's route table is checked against the served OpenAPI in tests).
 */

export const addressParam = z.object({ address: addressSchema });
export const fundRequestParam = z.object({ id: z.string().regex(/^fr_[0-9A-Za-z]{22}$/, 'expected a fr_… id') });

const recipient = addressSchema.refine((a) => a !== zeroAddress, {
  message: 'the zero address would burn the funds',
});

export const createBody = z
  .object({
    chain: z
      .string()
      .max(40)
      .optional()
      .describe('base | base-sepolia | devnet or a CAIP-2 id; must be the chain this service runs on'),
    label: z.string().trim().min(1).max(100).optional(),
  })
  .strict();

export const SCOPES = ['all', 'send', 'swap', 'pay'] as const;

/** `amount` in the asset's own decimals (USDC 6, ETH 18), as a decimal string; parsed to atomic units. */
const assetAmount = <T extends z.ZodObject>(shape: T, assetKey: string) =>
  shape.transform((value, ctx) => {
    const asset = (value as Record<string, unknown>)[assetKey] as 'USDC' | 'ETH';
    const raw = (value as Record<string, unknown>).amount;
    try {
      const atomic = parseDecimal(raw, asset === 'ETH' ? 18 : 6);
      if (atomic === 0n) throw new Error('amount must be greater than zero');
      return { ...value, amountAtomic: atomic };
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['amount'], message: (err as Error).message });
      return z.NEVER;
    }
  });

export const sendBody = assetAmount(
  z
    .object({
      to: recipient,
      amount: z.string({ message: 'expected a decimal string like "1.50"' }),
      asset: z.enum(['USDC', 'ETH']).default('USDC'),
    })
    .strict(),
  'asset',
);

export const swapBody = assetAmount(
  z
    .object({
      from: z.enum(['USDC', 'ETH']),
      to: z.enum(['USDC', 'ETH']),
      amount: z.string({ message: 'expected a decimal string like "10.00"' }),
      maxSlippageBps: z.number().int().min(0).max(5_000).default(50),
      deadlineSeconds: z.number().int().min(30).max(3_600).optional(),
    })
    .strict()
    .refine((v) => v.from !== v.to, { path: ['to'], message: 'from and to must differ (USDC↔ETH)' }),
  'from',
);

export const fundRequestBody = z
  .object({
    amount: usdcAmountSchema(),
    reason: z.string().trim().min(1).max(1_000),
  })
  .strict();

export const fundRequestsQuery = paginationQuery.extend({
  status: z.enum(['pending', 'approved', 'denied', 'expired']).optional(),
});

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`), `expected ${bytes} bytes hex`);
const uint = z.union([z.string().regex(/^\d{1,78}$/), z.number().int().nonnegative()]).transform(String);

export const authorizationSchema = z
  .object({
    from: addressSchema,
    to: addressSchema,
    value: uint,
    validAfter: uint,
    validBefore: uint,
    nonce: hex(32),
    signature: hex(65),
  })
  .strict();

export const approveBody = z
  .object({
    authorization: authorizationSchema
      .optional()
      .describe('EIP-3009 transferWithAuthorization signed by the owner: owner → wallet, exactly the amount'),
  })
  .strict();

export const denyBody = z.object({ reason: z.string().trim().max(1_000).optional() }).strict();

export const pauseBody = z
  .object({
    scope: z.enum(SCOPES).default('all'),
    reason: z.string().trim().min(1).max(500).default('paused by the owner'),
  })
  .strict();

export const resumeBody = z.object({ scope: z.enum(SCOPES).default('all') }).strict();

export const deleteQuery = z.object({ sweepTo: recipient.optional() });

export const payBody = z
  .object({
    url: z.string().max(4_000),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'not a header name'), z.string().max(8_000))
      .default({}),
    body: z.string().max(1_000_000).optional(),
    maxAmount: usdcAmountSchema().optional().describe('refuse to pay more than this (USDC) for the request'),
  })
  .strict();

export const notificationsBody = z
  .object({
    webhookUrl: z.string().max(2_000).nullable().optional(),
    webhookSecret: z.string().min(16).max(200).optional(),
    events: z
      .array(
        z.enum([
          'fund_request.created',
          'fund_request.approved',
          'fund_request.denied',
          'fund_request.expired',
          'wallet.paused',
          'wallet.breaker_tripped',
        ]),
      )
      .nullable()
      .optional(),
    email: z.email().max(320).nullable().optional(),
  })
  .strict();

export const deliveriesQuery = paginationQuery.extend({ channel: z.enum(['webhook', 'email']).default('webhook') });

export const killSwitchBody = z
  .object({ engaged: z.boolean(), reason: z.string().trim().max(500).optional() })
  .strict();

// --- responses (documented shapes) ----------------------------------------------------------------------

const money = { amount: z.string(), amountAtomic: z.string() };

export const journalEntrySchema = z.object({
  id: z.string(),
  kind: z.string(),
  direction: z.enum(['out', 'in']),
  asset: z.enum(['USDC', 'ETH']),
  ...money,
  counterparty: z.string().nullable(),
  service: z.string().nullable(),
  status: z.enum(['intent', 'submitted', 'confirmed', 'failed']),
  txHash: z.string().nullable(),
  error: z.string().nullable(),
  actor: z.string(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});

const createdSchema = z.object({
  address: z.string(),
  chain: z.string(),
  network: z.string(),
  label: z.string().nullable(),
  balance: z.string(),
  balanceAtomic: z.string(),
  funded: z.literal(false),
  claimToken: z.string(),
  claimTokenExpiresAt: z.string(),
  agentToken: z.string(),
  createdAt: z.string(),
});

const safetySchema = z.object({
  paused: z.array(z.object({ scope: z.string(), reason: z.string(), source: z.string(), pausedAt: z.string() })),
  breakers: z.array(
    z.object({
      scope: z.string(),
      consecutiveFailures: z.number(),
      threshold: z.number(),
      lastError: z.string().nullable(),
    }),
  ),
  killSwitch: z.object({ engaged: z.boolean(), reason: z.string().nullable() }),
});

const walletViewSchema = z.object({
  address: z.string(),
  chain: z.string(),
  network: z.string(),
  label: z.string().nullable(),
  status: z.enum(['active', 'deactivated']),
  owner: z.string().nullable(),
  claimed: z.boolean(),
  balances: z.object({ usdc: z.string(), usdcAtomic: z.string(), eth: z.string(), ethAtomic: z.string() }),
  funded: z.boolean(),
  policy: policyJsonSchema,
  safety: safetySchema,
  createdAt: z.string(),
  deactivatedAt: z.string().nullable(),
});

const page = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });

const fundRequestSchema = z.object({
  id: z.string(),
  wallet: z.string(),
  owner: z.string(),
  ...money,
  reason: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'expired']),
  requestedBy: z.enum(['owner', 'agent']),
  decisionReason: z.string().nullable(),
  txHash: z.string().nullable(),
  createdAt: z.string(),
  expiresAt: z.string(),
  decidedAt: z.string().nullable(),
  approve: z
    .object({
      primaryType: z.string(),
      domain: z.record(z.string(), z.unknown()),
      message: z.record(z.string(), z.string()),
    })
    .optional(),
});

const swapResultSchema = journalEntrySchema.extend({
  from: z.enum(['USDC', 'ETH']),
  to: z.enum(['USDC', 'ETH']),
  amountIn: z.string(),
  amountInAtomic: z.string(),
  quotedOut: z.string(),
  quotedOutAtomic: z.string(),
  minOut: z.string(),
  minOutAtomic: z.string(),
  amountOut: z.string().nullable(),
  amountOutAtomic: z.string().nullable(),
  maxSlippageBps: z.number(),
});

const policyViewSchema = z.object({
  policy: policyJsonSchema,
  usage: z.object({
    day: z.string(),
    resetsAt: z.string(),
    spentToday: z.string(),
    remainingToday: z.string().nullable(),
  }),
});

const payResultSchema = z.object({
  status: z.number(),
  headers: z.record(z.string(), z.string()),
  body: z.string().nullable(),
  bodyEncoding: z.enum(['utf8', 'base64']),
  url: z.string(),
  paid: z
    .object({
      amount: z.string(),
      amountAtomic: z.string(),
      payTo: z.string(),
      network: z.string(),
      journalId: z.string(),
      status: z.string(),
      transaction: z.string().nullable(),
    })
    .nullable(),
});

const notificationsSchema = z.object({
  webhook: z
    .object({
      id: z.string(),
      url: z.string(),
      events: z.array(z.string()).nullable(),
      status: z.string(),
      disabledReason: z.string().nullable(),
      secret: z.string().optional(),
    })
    .nullable(),
  email: z.string().nullable(),
  emailEnabled: z.boolean(),
});

const OWNER = 'owner (x402 payer bound by X-Claim-Token)';
const OWNER_OR_AGENT = `${OWNER}, or the agent (Authorization: Bearer <agentToken>; fee paid from the wallet)`;

export function routeSpecs(prices: Prices): RouteSpec[] {
  const $ = (atomic: bigint) => `$${formatUsdc(atomic).replace(/0+$/, '').replace(/\.$/, '')}`;
  return [
    { method: 'get', path: '/v1/health', summary: 'Liveness, chain and kill-switch state', auth: 'anyone' },
    {
      method: 'post',
      path: '/v1/wallets',
      summary: 'Create a managed wallet; returns claimToken and agentToken once',
      description:
        'Free, rate-limited per client IP. The key is generated and kept encrypted by the service. Keep both tokens: ' +
        'the claim token binds the owner on the first paid request that sends it as X-Claim-Token; the agent token ' +
        'lets an agent act within the policy.',
      auth: 'anyone',
      idempotent: true,
      body: createBody,
      response: createdSchema,
      responseStatus: 201,
    },
    {
      method: 'get',
      path: '/v1/wallets',
      summary: 'Wallets owned by the caller',
      price: $(prices.list),
      settlement: 'after-success',
      auth: 'x402 payer (or an agent token: the wallets that managed wallet owns)',
      query: paginationQuery,
      response: page(
        z.object({ address: z.string(), label: z.string().nullable(), status: z.string(), createdAt: z.string() }),
      ),
    },
    {
      method: 'get',
      path: '/v1/wallets/:address',
      summary: 'Details: USDC and ETH balances (on-chain), policy, pauses and breakers, owner',
      price: $(prices.get),
      settlement: 'after-success',
      auth: OWNER_OR_AGENT,
      params: addressParam,
      response: walletViewSchema,
    },
    {
      method: 'delete',
      path: '/v1/wallets/:address',
      summary: 'Deactivate; with ?sweepTo= the remaining USDC is sent there first',
      description: 'Settles first when sweepTo is given (it moves money), otherwise only after success.',
      price: $(prices.delete),
      settlement: 'first',
      auth: OWNER,
      idempotent: true,
      params: addressParam,
      query: deleteQuery,
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/send',
      summary: 'Send USDC (gasless: EIP-3009 relayed by the service) or ETH (needs ETH for gas)',
      description:
        'Policy, journal and breaker apply. 200 when confirmed, 202 when still pending (poll history), ' +
        '422 policy_violation naming the rule and remaining allowance, 409 wallet_paused.',
      price: $(prices.send),
      settlement: 'first',
      auth: OWNER_OR_AGENT,
      idempotent: true,
      params: addressParam,
      body: sendBody,
      response: journalEntrySchema,
      responseStatus: 200,
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/swap',
      summary: 'Swap USDC↔ETH on a Uniswap-V2 router: quote, maxSlippageBps, deadline',
      description:
        'USDC→ETH works with 0 ETH: the USDC is pulled by EIP-3009 to the service, swapped, and the ETH delivered; ' +
        'if the price moves past maxSlippageBps the USDC is returned. ETH→USDC is signed by the wallet (needs gas).',
      price: $(prices.swap),
      settlement: 'first',
      auth: OWNER_OR_AGENT,
      idempotent: true,
      params: addressParam,
      body: swapBody,
      response: swapResultSchema,
      responseStatus: 200,
    },
    {
      method: 'get',
      path: '/v1/wallets/:address/history',
      summary: 'Journal entries and observed incoming USDC transfers, newest first',
      price: $(prices.history),
      settlement: 'after-success',
      auth: OWNER_OR_AGENT,
      params: addressParam,
      query: paginationQuery,
      response: page(journalEntrySchema.extend({ type: z.enum(['journal', 'incoming']), at: z.string() })),
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/fund-request',
      summary: 'Ask the owner for USDC; the owner gets a signed webhook (and an email via relay.sh)',
      price: $(prices.fundRequest),
      settlement: 'first',
      auth: OWNER_OR_AGENT,
      idempotent: true,
      params: addressParam,
      body: fundRequestBody,
      response: fundRequestSchema,
      responseStatus: 201,
    },
    {
      method: 'get',
      path: '/v1/wallets/:address/fund-requests',
      summary: 'Funding requests of a wallet, optionally ?status=',
      price: $(prices.fundRequests),
      settlement: 'after-success',
      auth: OWNER_OR_AGENT,
      params: addressParam,
      query: fundRequestsQuery,
      response: page(fundRequestSchema),
    },
    {
      method: 'post',
      path: '/v1/fund-requests/:id/approve',
      summary: 'Owner approves: the service relays the owner-signed EIP-3009 authorization (owner pays no gas)',
      description:
        'authorization: transferWithAuthorization from the owner to the wallet for exactly the requested amount ' +
        '(the request shows the EIP-712 domain and message). An owner that is itself a managed wallet here omits it ' +
        'and calls with its agent token: the service signs, under that wallet’s policy.',
      price: $(prices.approve),
      settlement: 'first',
      auth: 'the owner of the requesting wallet',
      idempotent: true,
      params: fundRequestParam,
      body: approveBody,
      response: fundRequestSchema,
      responseStatus: 200,
    },
    {
      method: 'post',
      path: '/v1/fund-requests/:id/deny',
      summary: 'Owner denies, with an optional reason',
      price: $(prices.deny),
      settlement: 'after-success',
      auth: 'the owner of the requesting wallet',
      idempotent: true,
      params: fundRequestParam,
      body: denyBody,
      response: fundRequestSchema,
      responseStatus: 200,
    },
    {
      method: 'get',
      path: '/v1/wallets/:address/policy',
      summary: 'The spending policy and today’s usage (resets 00:00 UTC)',
      price: $(prices.policyGet),
      settlement: 'after-success',
      auth: OWNER_OR_AGENT,
      params: addressParam,
      response: policyViewSchema,
    },
    {
      method: 'put',
      path: '/v1/wallets/:address/policy',
      summary: 'Replace the policy: maxPerTx, maxPerDay, per-recipient / per-service caps, allow/deny, autoPauseBelow',
      description: 'Amounts are USDC decimal strings; omitted fields mean no limit. ETH movements are valued in USDC.',
      price: $(prices.policyPut),
      settlement: 'after-success',
      auth: OWNER,
      idempotent: true,
      params: addressParam,
      body: policyInputSchema,
      response: policyViewSchema,
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/pause',
      summary: 'Circuit breaker: pause a scope (all, send, swap, pay)',
      price: $(prices.pause),
      settlement: 'after-success',
      auth: OWNER,
      idempotent: true,
      params: addressParam,
      body: pauseBody,
      response: safetySchema,
      responseStatus: 200,
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/resume',
      summary: 'Resume a scope (all: every pause); resets its breaker count',
      price: $(prices.resume),
      settlement: 'after-success',
      auth: OWNER,
      idempotent: true,
      params: addressParam,
      body: resumeBody,
      response: safetySchema,
      responseStatus: 200,
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/pay',
      summary: 'Make an x402-paid HTTP request for the wallet (policy-bounded; public http(s) targets only)',
      description:
        'The route fee settles first; the target’s price is paid from the managed wallet (USDC, EIP-3009) after ' +
        'the policy allowed it. Private, loopback, link-local and similar targets are refused, on every redirect.',
      price: `${$(prices.pay)} + what the target asks`,
      settlement: 'first',
      auth: OWNER_OR_AGENT,
      idempotent: true,
      params: addressParam,
      body: payBody,
      response: payResultSchema,
      responseStatus: 200,
    },
    {
      method: 'get',
      path: '/v1/wallets/:address/notifications',
      summary: 'Where the owner is notified (webhook, email)',
      price: $(prices.notifications),
      settlement: 'after-success',
      auth: OWNER,
      params: addressParam,
      response: notificationsSchema,
    },
    {
      method: 'put',
      path: '/v1/wallets/:address/notifications',
      summary: 'Set the owner’s webhook (HMAC-signed; secret generated and shown once if not given) and email',
      price: $(prices.notifications),
      settlement: 'after-success',
      auth: OWNER,
      idempotent: true,
      params: addressParam,
      body: notificationsBody,
      response: notificationsSchema,
    },
    {
      method: 'get',
      path: '/v1/wallets/:address/deliveries',
      summary: 'Delivery log of owner notifications (?channel=webhook|email), with every attempt',
      price: $(prices.deliveries),
      settlement: 'after-success',
      auth: OWNER,
      params: addressParam,
      query: deliveriesQuery,
    },
    {
      method: 'post',
      path: '/v1/wallets/:address/agent-token',
      summary: 'Rotate the agent token (the old one stops working); the new one is shown once',
      price: $(prices.rotateAgentToken),
      settlement: 'after-success',
      auth: OWNER,
      params: addressParam,
      response: z.object({ agentToken: z.string() }),
      responseStatus: 200,
    },
    {
      method: 'get',
      path: '/v1/operator/kill-switch',
      summary: 'Operator: the kill switch state',
      auth: 'operator (Authorization: Bearer <WALLET_OPERATOR_TOKEN>)',
      response: z.object({ engaged: z.boolean(), reason: z.string().nullable() }),
    },
    {
      method: 'put',
      path: '/v1/operator/kill-switch',
      summary: 'Operator: stop (or restart) every money movement of the service',
      auth: 'operator (Authorization: Bearer <WALLET_OPERATOR_TOKEN>)',
      body: killSwitchBody,
      response: z.object({ engaged: z.boolean(), reason: z.string().nullable() }),
    },
  ];
}
