import { createLogger, type Logger } from '@agentstack/core';
import { createDatabase } from '@agentstack/db';
import { createApp } from './app.js';
import { type Auth, createAuth } from './auth.js';
import { ChatRelay } from './chat.js';
import type { PlatformConfig } from './config.js';
import { Conversations } from './conversations.js';
import { type PlatformDB, TransactionScopedKysely } from './db.js';
import { createProxyApp } from './llm-proxy/app.js';
import { ProviderRegistry } from './llm-proxy/providers/registry.js';
import { LlmProxy } from './llm-proxy/proxy.js';
import { RateLimiter } from './llm-proxy/rate-limit.js';
import { Reservations } from './llm-proxy/reservations.js';
import { ProxyStore } from './llm-proxy/store.js';
import type { TenantOrchestrator } from './orchestrator/types.js';
import { TenantProvisioner } from './provisioning.js';
import { LoggingRuntimeRequester, type TenantRuntimeRequester } from './runtime-requester.js';
import { TenantRuntimes } from './runtimes.js';
import { resolveSecrets } from './secrets.js';
import { ServiceTokens } from './service-token.js';
import { PlatformStore } from './store.js';
import { TenantLifecycle } from './tenants.js';

/**
 * Everything the platform's HTTP apps share, built once per process: the database, Better Auth, the
 * stores and the seams to other components. The platform API (`app`) is one Hono app over it; the LLM
 * proxy (`proxyApp`) is a second one over the same dependencies, served on its own port by main.ts.
 */
export interface Platform {
  config: PlatformConfig;
  log: Logger;
  db: TransactionScopedKysely;
  store: PlatformStore;
  auth: Auth;
  serviceTokens: ServiceTokens;
  requester: TenantRuntimeRequester;
  /** Tenant runtimes over the configured orchestrator; null when none is configured. */
  runtimes: TenantRuntimes | null;
  chat: ChatRelay;
  provisioner: TenantProvisioner;
  lifecycle: TenantLifecycle;
  conversations: Conversations;
  app: ReturnType<typeof createApp>;
  providers: ProviderRegistry;
  reservations: Reservations;
  proxy: LlmProxy;
  proxyApp: ReturnType<typeof createProxyApp>;
  /** Starts the proxy's background work: renewing holds of calls in flight, sweeping expired holds. */
  startBackground(): void;
  close(): Promise<void>;
}

export interface PlatformOverrides {
  log?: Logger;
  /** The runtime backend; without one, sign-ups only log and chat answers 503. */
  orchestrator?: TenantOrchestrator;
  /** Why there is no orchestrator, when one was configured but could not start (told to chat users). */
  runtimesUnavailable?: string;
  /** Runtime env for every tenant (e.g. RUNTIME_DEFAULT_MODEL=demo). */
  runtimeEnv?: Record<string, string>;
  /** Replaces the requester entirely (tests of the account lifecycle). */
  requester?: TenantRuntimeRequester;
}

export async function createPlatform(config: PlatformConfig, overrides: PlatformOverrides = {}): Promise<Platform> {
  const log = overrides.log ?? createLogger({ name: 'platform-api', level: config.LOG_LEVEL });
  const database = createDatabase<PlatformDB>({
    connectionString: config.DATABASE_URL,
    max: 20,
    applicationName: 'platform-api',
    log,
  });
  // Same pool, through a Kysely that exposes the current transaction to Better Auth's hooks.
  const db = new TransactionScopedKysely(database.pool, (err) => log.error({ err }, 'after-commit task failed'));
  let stopBackground = async () => {};
  // Kysely ends a pool only if it ever used it, and `database.db` never is: end the pool ourselves.
  let runtimes: TenantRuntimes | null = null;
  const close = async () => {
    await runtimes?.close();
    await stopBackground();
    await db.destroy();
    if (!database.pool.ended) await database.pool.end();
  };
  try {
    const secrets = await resolveSecrets(config);
    const store = new PlatformStore(db);
    runtimes = overrides.orchestrator
      ? new TenantRuntimes({
          orchestrator: overrides.orchestrator,
          db,
          log,
          ...(overrides.runtimeEnv ? { env: overrides.runtimeEnv } : {}),
        })
      : null;
    const requester = overrides.requester ?? runtimes ?? new LoggingRuntimeRequester(log);
    const provisioner = new TenantProvisioner({ db, freeCreditMicros: config.SIGNUP_FREE_CREDIT, requester, log });
    const auth = createAuth({ config, db, secret: secrets.authSecret, provisioner, log });
    const serviceTokens = new ServiceTokens(secrets.serviceTokenKey, config.SERVICE_TOKEN_TTL_SECONDS);
    const lifecycle = new TenantLifecycle({ db, requester, tenantDataDir: config.tenantDataDir, log });
    const conversations = new Conversations(db);
    const chat = new ChatRelay({
      db,
      conversations,
      runtimes,
      log,
      ...(overrides.runtimesUnavailable ? { unavailableReason: overrides.runtimesUnavailable } : {}),
    });
    const app = createApp({ config, log, db, store, auth, serviceTokens, lifecycle, conversations, chat, runtimes });

    const settings = config.proxy;
    const providers = new ProviderRegistry(config, settings);
    const reservations = new Reservations({ db, ttlMs: settings.reservationTtlMs, log });
    const proxy = new LlmProxy({ store, providers, reservations, settings, log });
    const rateLimiter = new RateLimiter(db, settings.rateLimitPerMinute);
    const proxyApp = createProxyApp({ db, store, proxy, providers, rateLimiter, settings, log });
    let sweeper: NodeJS.Timeout | undefined;
    const startBackground = () => {
      proxy.start();
      if (sweeper) return;
      const proxyStore = new ProxyStore(db);
      sweeper = setInterval(() => {
        reservations
          .sweepExpired()
          .then(() => proxyStore.pruneRateWindows())
          .catch((err) => log.error({ err }, 'LLM proxy sweep failed'));
      }, settings.sweepIntervalMs);
      sweeper.unref();
    };
    stopBackground = async () => {
      clearInterval(sweeper);
      await proxy.close();
    };
    return {
      config,
      log,
      db,
      store,
      auth,
      serviceTokens,
      requester,
      runtimes,
      chat,
      provisioner,
      lifecycle,
      conversations,
      app,
      providers,
      reservations,
      proxy,
      proxyApp,
      startBackground,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
