import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BASE_UNISWAP_V2_ROUTER,
  type ChainInfo,
  DEVNET_ACCOUNTS,
  DEVNET_UNISWAP,
  fundUsdc,
  isDevnetRpc,
} from '@agentstack/chain';
import {
  type Clock,
  ConfigError,
  createLogger,
  createSafeFetch,
  createSecretBox,
  type Logger,
  loadOrCreateMasterSecret,
  masterSecretFromHex,
  parseUsdc,
  type Resolver,
  systemClock,
} from '@agentstack/core';
import { createDatabase, migrate } from '@agentstack/db';
import { WebhookOutbox, webhooksMigrationsDir } from '@agentstack/webhooks';
import {
  chainFromConfig,
  createPayingFetch,
  HTTPFacilitatorClient,
  PaymentGate,
  PgX402Store,
  x402MigrationsDir,
} from '@agentstack/x402';
import { toClientEvmSigner } from '@x402/evm';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { buildApp } from './app.js';
import { ChainGateway } from './chain.js';
import { DEFAULT_PRICES, type Prices, type WalletConfig } from './config.js';
import type { Ctx, Mailer, TestHooks } from './context.js';
import type { WalletDB } from './db.js';
import { reconcilePending } from './execute.js';
import { expireFundRequests } from './funding.js';
import { indexIncoming, startIndexing } from './history.js';
import { InstanceLock } from './instance.js';
import { KeyVault } from './keys.js';
import { sendDueEmails } from './notify.js';
import { RelayMailer } from './relay-mailer.js';

export const walletMigrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

/** wallet.sh's own tables, plus the x402 gate's and the webhook outbox's, each with its own record table. */
export async function migrateWalletDatabase(connectionString: string, log?: Logger): Promise<void> {
  await migrate({ connectionString, dir: x402MigrationsDir, table: 'x402_schema_migrations', ...(log ? { log } : {}) });
  await migrate({
    connectionString,
    dir: webhooksMigrationsDir,
    table: 'webhooks_schema_migrations',
    ...(log ? { log } : {}),
  });
  await migrate({ connectionString, dir: walletMigrationsDir, table: 'schema_migrations', ...(log ? { log } : {}) });
}

const key = (hex: string) => (hex.startsWith('0x') ? hex : `0x${hex}`) as Hex;

export interface WalletServiceOverrides {
  clock?: Clock;
  log?: Logger;
  hooks?: TestHooks;
  mailer?: Mailer;
  /** DNS for pay and webhooks (tests inject one). */
  resolve?: Resolver;
  /** Facilitator client (tests may pass an in-process one). */
  facilitator?: HTTPFacilitatorClient;
}

export interface WalletService {
  app: ReturnType<typeof buildApp>['app'];
  ctx: Ctx;
  gate: PaymentGate;
  /** Reconciles what a previous run left unfinished, then starts the background workers. */
  start(): Promise<void>;
  /** One pass of every background job (tests call this instead of waiting for timers). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Builds wallet.sh from its configuration: database, keys, chain gateway, payment gate, outbox, mailer and
 * the HTTP app. Nothing runs until `start()`.
 */
export async function createWalletService(
  config: WalletConfig,
  overrides: WalletServiceOverrides = {},
): Promise<WalletService> {
  const log = overrides.log ?? createLogger({ name: 'wallet', level: config.LOG_LEVEL });
  const clock = overrides.clock ?? systemClock;
  const chain: ChainInfo = chainFromConfig(config);
  const onDevnet = chain.isDevnet && (await isDevnetRpc(chain.rpcUrl).catch(() => false));

  let master: Buffer;
  if (config.WALLET_MASTER_SECRET) master = masterSecretFromHex(config.WALLET_MASTER_SECRET);
  else if (chain.name === 'base') {
    throw new ConfigError([
      {
        variable: 'WALLET_MASTER_SECRET',
        message: 'required on Base mainnet (32 bytes hex; keep it in a secret store)',
      },
    ]);
  } else master = await loadOrCreateMasterSecret(join(config.SERVICE_DATA_DIR, 'master.key'));

  let gasKey = config.WALLET_GAS_PRIVATE_KEY ? key(config.WALLET_GAS_PRIVATE_KEY) : undefined;
  if (!gasKey) {
    if (!onDevnet) {
      throw new ConfigError([
        { variable: 'WALLET_GAS_PRIVATE_KEY', message: `required on ${chain.name} (it is not set)` },
      ]);
    }
    gasKey = DEVNET_ACCOUNTS.walletRelayer.privateKey;
  }
  const router =
    config.WALLET_UNISWAP_ROUTER ??
    (chain.isDevnet ? DEVNET_UNISWAP.router : chain.name === 'base' ? BASE_UNISWAP_V2_ROUTER : undefined);
  if (config.WALLET_TEST_PAUSE_AT && !onDevnet) {
    throw new ConfigError([
      { variable: 'WALLET_TEST_PAUSE_AT', message: 'is a test-only setting, honoured on the devnet only' },
    ]);
  }

  const database = createDatabase<WalletDB>({ connectionString: config.DATABASE_URL, applicationName: 'wallet', log });
  const instance = await InstanceLock.acquire(database.pool);
  const gateway = new ChainGateway(chain, gasKey, {
    pollingIntervalMs: chain.isDevnet ? 50 : 1_000,
    ...(router ? { uniswapRouter: router } : {}),
    log,
  });
  const keyBox = createSecretBox(master, 'wallet-keys');
  const responseBox = createSecretBox(master, 'wallet-responses');
  const allowHosts = config.WALLET_PAY_ALLOW_HOSTS;
  const outbox = new WebhookOutbox({
    db: database.pool,
    secretBox: createSecretBox(master, 'webhook-secrets'),
    fetch: createSafeFetch({
      allowHosts,
      maxRedirects: 0,
      maxResponseBytes: 64 * 1024,
      timeoutMs: 10_000,
      ...(overrides.resolve ? { resolve: overrides.resolve } : {}),
    }),
    clock,
    log,
  });

  let mailer = overrides.mailer;
  if (!mailer && config.RELAY_URL) {
    const notifyAccount = privateKeyToAccount(key(config.WALLET_NOTIFY_PRIVATE_KEY ?? gasKey));
    const paying = createPayingFetch(toClientEvmSigner(notifyAccount, gateway.client as never), {
      maxPerPayment: parseUsdc('0.10'),
    });
    mailer = new RelayMailer({ relayUrl: config.RELAY_URL, fetch: paying.fetch, db: database.db, clock, log });
    if (onDevnet && (await gateway.usdcBalance(notifyAccount.address)) === 0n) {
      // The devnet notifier needs USDC to pay relay.sh; on real chains the operator funds it.
      await fundUsdc({ rpcUrl: chain.rpcUrl, to: notifyAccount.address, amount: 100_000_000n });
    }
  }

  // The caller's object itself: a test sets and clears hooks on it while the service runs.
  const hooks: TestHooks = overrides.hooks ?? {};
  if (config.WALLET_TEST_PAUSE_AT) {
    // Test-only: announce the point and hang, so a test can SIGKILL the process exactly there.
    const hang = (point: string) => async (entryId: string) => {
      process.stdout.write(`WALLET_TEST_PAUSED ${point} ${entryId}\n`);
      await new Promise(() => {});
    };
    if (config.WALLET_TEST_PAUSE_AT === 'after-intent') hooks.afterIntent = hang('after-intent');
    else hooks.afterSubmit = hang('after-submit');
  }

  const prices: Prices =
    config.WALLET_PRICES ??
    (Object.fromEntries(Object.entries(DEFAULT_PRICES).map(([k, v]) => [k, parseUsdc(v)])) as Prices);

  const ctx: Ctx = {
    db: database.db,
    pool: database.pool,
    gateway,
    keys: new KeyVault(keyBox),
    clock,
    log,
    settings: {
      network: chain.network,
      chainName: chain.name,
      payTo: config.PAY_TO_ADDRESS,
      prices,
      breakerThreshold: config.WALLET_BREAKER_THRESHOLD,
      killSwitchFromEnv: config.WALLET_KILL_SWITCH,
      ...(config.WALLET_OPERATOR_TOKEN ? { operatorToken: config.WALLET_OPERATOR_TOKEN } : {}),
      claimTokenTtlSeconds: config.WALLET_CLAIM_TOKEN_TTL_SECONDS,
      fundRequestTtlSeconds: config.WALLET_FUND_REQUEST_TTL_SECONDS,
      swapDeadlineSeconds: config.WALLET_SWAP_DEADLINE_SECONDS,
      confirmTimeoutMs: config.WALLET_CONFIRM_TIMEOUT_MS,
      createLimit: config.WALLET_CREATE_LIMIT,
      createWindowSeconds: config.WALLET_CREATE_WINDOW_SECONDS,
      trustProxy: config.WALLET_TRUST_PROXY,
      payTimeoutMs: config.WALLET_PAY_TIMEOUT_MS,
      payMaxResponseBytes: config.WALLET_PAY_MAX_RESPONSE_BYTES,
    },
    outbox,
    instance,
    payFetch: createSafeFetch({
      allowHosts,
      maxRedirects: config.WALLET_PAY_MAX_REDIRECTS,
      maxResponseBytes: config.WALLET_PAY_MAX_RESPONSE_BYTES,
      timeoutMs: config.WALLET_PAY_TIMEOUT_MS,
      ...(overrides.resolve ? { resolve: overrides.resolve } : {}),
    }),
    ...(mailer ? { mailer } : {}),
    hooks,
    seal: (plaintext, aad) => responseBox.seal(plaintext, aad),
    open: (sealed, aad) => responseBox.openText(sealed, aad),
  };

  const gate = new PaymentGate({
    facilitator: overrides.facilitator ?? new HTTPFacilitatorClient({ url: config.FACILITATOR_URL }),
    network: chain.network,
    payTo: config.PAY_TO_ADDRESS,
    asset: chain.usdc,
    store: new PgX402Store(database.pool),
    serviceName: 'wallet.sh',
    idempotencyLeaseMs: config.WALLET_IDEMPOTENCY_LEASE_MS,
    log,
  });
  await startIndexing(ctx);
  const { app } = buildApp({
    ctx,
    gate,
    allowHosts,
    ...(overrides.resolve ? { resolve: overrides.resolve } : {}),
  });

  const timers: NodeJS.Timeout[] = [];
  let stopping = false;
  const running = new Set<Promise<unknown>>();
  const every = (ms: number, what: string, job: () => Promise<unknown>) => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || stopping) return;
      busy = true;
      const pass = job()
        .catch((err) => log.warn({ err }, `${what} pass failed`))
        .finally(() => {
          busy = false;
          running.delete(pass);
        });
      running.add(pass);
    }, ms);
    timer.unref();
    timers.push(timer);
  };

  const tick = async () => {
    await reconcilePending(ctx);
    await expireFundRequests(ctx);
    await outbox.deliverDue();
    await sendDueEmails(ctx);
    await indexIncoming(ctx);
  };

  return {
    app,
    ctx,
    gate,
    async start() {
      // Before serving: whatever a previous process left between submit and confirm is settled first.
      const settled = await reconcilePending(ctx);
      if (settled > 0) log.info({ settled }, 'reconciled journal entries left by a previous run');
      every(config.WALLET_SWEEP_INTERVAL_MS, 'reconcile', () => reconcilePending(ctx));
      every(config.WALLET_SWEEP_INTERVAL_MS, 'fund request expiry', () => expireFundRequests(ctx));
      every(Math.max(1_000, Math.min(config.WALLET_SWEEP_INTERVAL_MS, 5_000)), 'email', () => sendDueEmails(ctx));
      every(config.WALLET_INDEXER_INTERVAL_MS, 'incoming transfer index', () => indexIncoming(ctx));
      outbox.start({ intervalMs: 1_000 });
    },
    tick,
    async stop() {
      stopping = true;
      for (const timer of timers) clearInterval(timer);
      await outbox.stop();
      await Promise.allSettled([...running]);
      await instance.release().catch(() => {});
      await database.close();
    },
  };
}
