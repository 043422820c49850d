import { addressSchema } from '@agentstack/chain';
import { env, loadConfig, parseUsdc } from '@agentstack/core';
import { paymentEnv } from '@agentstack/x402';
import { z } from 'zod';

/** Route prices in atomic USDC: one table, overridable with `WALLET_PRICES` (JSON of decimal strings). */
export const DEFAULT_PRICES = {
  list: '0.001',
  get: '0.001',
  delete: '0.001',
  send: '0.005',
  swap: '0.01',
  history: '0.001',
  fundRequest: '0.001',
  fundRequests: '0.001',
  approve: '0.001',
  deny: '0.001',
  policyGet: '0.001',
  policyPut: '0.001',
  pause: '0.001',
  resume: '0.001',
  pay: '0.001',
  notifications: '0.001',
  deliveries: '0.001',
  rotateAgentToken: '0.001',
} as const;

export type PriceKey = keyof typeof DEFAULT_PRICES;
export type Prices = Record<PriceKey, bigint>;

const pricesSchema = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected JSON like {"send":"0.005"}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.enum(Object.keys(DEFAULT_PRICES) as [PriceKey, ...PriceKey[]]), z.string()))
  .transform((overrides, ctx) => {
    const prices = {} as Prices;
    for (const [key, value] of Object.entries({ ...DEFAULT_PRICES, ...overrides })) {
      try {
        prices[key as PriceKey] = parseUsdc(value);
        if (prices[key as PriceKey] <= 0n) throw new Error('must be greater than zero');
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${key}: ${(err as Error).message}` });
      }
    }
    return prices;
  });

export const walletConfigSchema = z.object({
  ...paymentEnv,
  WALLET_PORT: env.port(4101),
  WALLET_HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: env.url(),
  /** Receives route fees. On the devnet the stack passes a well-known test account. */
  PAY_TO_ADDRESS: addressSchema,
  /** 32 bytes hex: the key wallet keys are sealed with. Required on Base; elsewhere a generated file is the fallback. */
  WALLET_MASTER_SECRET: env.hexKey(32).optional(),
  SERVICE_DATA_DIR: z.string().default('.data/wallet'),
  /** Pays gas for gasless sends, swaps and approvals. On the devnet: a well-known test account of its own. */
  WALLET_GAS_PRIVATE_KEY: env.hexKey(32).optional(),
  /** Pays relay.sh for notification emails (default: the gas key). Needs USDC. */
  WALLET_NOTIFY_PRIVATE_KEY: env.hexKey(32).optional(),
  /** Uniswap-V2-compatible Router02. Default: the devnet's deployment; on Base, Uniswap V2's Router02. */
  WALLET_UNISWAP_ROUTER: addressSchema.optional(),
  WALLET_SWAP_DEADLINE_SECONDS: env.int(300, 30),
  WALLET_BREAKER_THRESHOLD: env.int(3, 1),
  /** true: every money movement stops (operator kill switch); also switchable at runtime, see llms.txt. */
  WALLET_KILL_SWITCH: env.bool(false),
  /** Bearer token for the operator routes (`/v1/operator/*`); unset: those routes are disabled. */
  WALLET_OPERATOR_TOKEN: z.string().min(24, 'use at least 24 characters').optional(),
  WALLET_CLAIM_TOKEN_TTL_SECONDS: env.int(30 * 24 * 3600, 60),
  WALLET_FUND_REQUEST_TTL_SECONDS: env.int(7 * 24 * 3600, 1),
  WALLET_SWEEP_INTERVAL_MS: env.int(15_000, 10),
  /** Wallets one client IP may create per window. */
  WALLET_CREATE_LIMIT: env.int(20, 1),
  WALLET_CREATE_WINDOW_SECONDS: env.int(3600, 1),
  /** Take the client IP from the first X-Forwarded-For entry (only behind a proxy that sets it). */
  WALLET_TRUST_PROXY: env.bool(false),
  /** Hosts `pay` may reach even when they resolve to private addresses (e.g. a local test server). */
  WALLET_PAY_ALLOW_HOSTS: env.list().default([]),
  WALLET_PAY_TIMEOUT_MS: env.int(30_000, 100),
  WALLET_PAY_MAX_RESPONSE_BYTES: env.int(1024 * 1024, 1024),
  WALLET_PAY_MAX_REDIRECTS: env.int(5, 0),
  /** How long a request holds its Idempotency-Key before a retry may take over (its process died). */
  WALLET_IDEMPOTENCY_LEASE_MS: env.int(5 * 60_000, 1_000),
  /** How long a send waits for its receipt before answering 202 with the journal entry. */
  WALLET_CONFIRM_TIMEOUT_MS: env.int(30_000, 100),
  WALLET_INDEXER_INTERVAL_MS: env.int(5_000, 10),
  WALLET_PRICES: pricesSchema.optional(),
  /** relay.sh base URL: when set, owners with an email get funding requests by email too. */
  RELAY_URL: z.url().optional(),
  /** Test-only: stop (and wait to be killed) at a point of a send. Honoured on the devnet only. */
  WALLET_TEST_PAUSE_AT: z.enum(['after-intent', 'after-submit']).optional(),
  LOG_LEVEL: env.logLevel(),
});

export type WalletConfig = z.infer<typeof walletConfigSchema>;

export const loadWalletConfig = (source: Record<string, string | undefined> = process.env) =>
  loadConfig(walletConfigSchema, source);
