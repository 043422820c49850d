import { createLogger, type Logger } from '@agentstack/core';
import { createDatabase } from '@agentstack/db';
import { createApp } from './app.js';
import { type Auth, createAuth } from './auth.js';
import type { PlatformConfig } from './config.js';
import { Conversations } from './conversations.js';
import { type PlatformDB, TransactionScopedKysely } from './db.js';
import { TenantProvisioner } from './provisioning.js';
import { LoggingRuntimeRequester, type TenantRuntimeRequester } from './runtime-requester.js';
import { resolveSecrets } from './secrets.js';
import { ServiceTokens } from './service-token.js';
import { PlatformStore } from './store.js';
import { TenantLifecycle } from './tenants.js';

/**
 * Everything the platform's HTTP apps share, built once per process: the database, Better Auth, the
 * stores and the seams to other components. The platform API (`app`) is one Hono app over it; the LLM
 * proxy will be a second one over the same dependencies, served on its own port by main.ts.
 */
export interface Platform {
  config: PlatformConfig;
  log: Logger;
  db: TransactionScopedKysely;
  store: PlatformStore;
  auth: Auth;
  serviceTokens: ServiceTokens;
  requester: TenantRuntimeRequester;
  provisioner: TenantProvisioner;
  lifecycle: TenantLifecycle;
  conversations: Conversations;
  app: ReturnType<typeof createApp>;
  close(): Promise<void>;
}

export interface PlatformOverrides {
  log?: Logger;
  /** The orchestrator's implementation; a logging no-op until one is configured. */
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
  // Kysely ends a pool only if it ever used it, and `database.db` never is: end the pool ourselves.
  const close = async () => {
    await db.destroy();
    if (!database.pool.ended) await database.pool.end();
  };
  try {
    const secrets = await resolveSecrets(config);
    const store = new PlatformStore(db);
    const requester = overrides.requester ?? new LoggingRuntimeRequester(log);
    const provisioner = new TenantProvisioner({ db, freeCreditMicros: config.SIGNUP_FREE_CREDIT, requester, log });
    const auth = createAuth({ config, db, secret: secrets.authSecret, provisioner, log });
    const serviceTokens = new ServiceTokens(secrets.serviceTokenKey, config.SERVICE_TOKEN_TTL_SECONDS);
    const lifecycle = new TenantLifecycle({ db, requester, tenantDataDir: config.tenantDataDir, log });
    const conversations = new Conversations(db);
    const app = createApp({ config, log, db, store, auth, serviceTokens, lifecycle, conversations });
    return {
      config,
      log,
      db,
      store,
      auth,
      serviceTokens,
      requester,
      provisioner,
      lifecycle,
      conversations,
      app,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
