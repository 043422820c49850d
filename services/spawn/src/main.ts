import { join, resolve } from 'node:path';
import { createLogger, loadOrCreateMasterSecret, masterSecretFromHex, runMain, runUntilSignal } from '@agentstack/core';
import { createDatabase, migrate } from '@agentstack/db';
import { createSandboxManager, SandboxUnavailableError } from '@agentstack/sandbox';
import { PgX402Store, paymentGateFromConfig, x402MigrationsDir } from '@agentstack/x402';
import { type Catalog, loadCatalog } from './catalog.js';
import { loadSpawnConfig, type SpawnConfig } from './config.js';
import { HetznerProvider } from './providers/hetzner.js';
import { HetznerClient } from './providers/hetzner-client.js';
import { LocalProvider } from './providers/local.js';
import type { ComputeProvider } from './providers/provider.js';
import { createSpawnService } from './service.js';
import { type SpawnDB, spawnMigrationsDir } from './store.js';

type Log = ReturnType<typeof createLogger>;

async function applyMigrations(connectionString: string, log?: Log) {
  await migrate({ connectionString, dir: x402MigrationsDir, table: 'x402_schema_migrations', ...(log ? { log } : {}) });
  await migrate({ connectionString, dir: spawnMigrationsDir, ...(log ? { log } : {}) });
}

async function buildProvider(config: SpawnConfig, catalog: Catalog, log: Log): Promise<ComputeProvider> {
  if (config.SPAWN_PROVIDER === 'hetzner') {
    const client = new HetznerClient({
      token: config.HETZNER_TOKEN as string,
      baseUrl: config.HETZNER_API_URL,
      requestsPerHour: config.HETZNER_REQUESTS_PER_HOUR,
    });
    return new HetznerProvider({ client, catalog, log });
  }
  const stateDir = resolve(config.SPAWN_SANDBOX_DIR ?? join(config.SERVICE_DATA_DIR, 'sandboxes'));
  try {
    const manager = await createSandboxManager({ stateDir, cgroupGroup: 'agentstack-spawn', log });
    return new LocalProvider({
      manager,
      catalog,
      sshHost: config.SPAWN_SSH_HOST,
      userDataTimeoutMs: config.SPAWN_USER_DATA_TIMEOUT_SECONDS * 1000,
      log,
    });
  } catch (err) {
    if (!(err instanceof SandboxUnavailableError)) throw err;
    // Said loudly at start; the service still serves keys and balances, and server creation answers 503.
    log.error({ problems: err.problems }, `local servers are unavailable:\n${err.message}`);
    return new LocalProvider({ manager: undefined, unavailable: err.problems.join('; '), catalog, log });
  }
}

async function serve() {
  const config = loadSpawnConfig();
  const log = createLogger({ name: 'spawn', level: config.LOG_LEVEL });
  const catalog = loadCatalog(config.SPAWN_CATALOG_FILE);
  await applyMigrations(config.DATABASE_URL, log);
  const database = createDatabase<SpawnDB>({ connectionString: config.DATABASE_URL, applicationName: 'spawn', log });
  const x402Store = new PgX402Store(database.pool);
  const { gate } = paymentGateFromConfig({
    config,
    payTo: config.PAY_TO_ADDRESS,
    serviceName: 'spawn.sh',
    store: x402Store,
    log,
  });
  const masterSecret = config.SPAWN_MASTER_KEY
    ? masterSecretFromHex(config.SPAWN_MASTER_KEY)
    : await loadOrCreateMasterSecret(join(config.SERVICE_DATA_DIR, 'master.key'));
  const provider = await buildProvider(config, catalog, log);
  await provider.init();
  const service = createSpawnService({
    db: database.db,
    gate,
    x402Store,
    provider,
    catalog,
    clock: { now: () => new Date() },
    log,
    masterSecret,
    allowPrivateWebhooks: config.SPAWN_WEBHOOK_ALLOW_PRIVATE,
    adminToken: config.SPAWN_ADMIN_TOKEN,
  });
  service.servers.startHeartbeat();
  await service.reconcile().catch((err) => log.error({ err }, 'reconciliation at start failed'));
  service.sweeper.start(config.SPAWN_SWEEP_INTERVAL_SECONDS * 1000);
  const reconcileTimer =
    config.SPAWN_RECONCILE_INTERVAL_SECONDS > 0
      ? setInterval(
          () => void service.reconcile().catch((err) => log.warn({ err }, 'reconciliation failed')),
          config.SPAWN_RECONCILE_INTERVAL_SECONDS * 1000,
        ).unref()
      : undefined;
  log.info({ provider: provider.name, available: !provider.unavailableReason() }, 'spawn provider ready');
  await runUntilSignal({
    app: service.app,
    port: config.SPAWN_PORT,
    hostname: config.SPAWN_HOST,
    log,
    name: 'spawn',
    onShutdown: async () => {
      if (reconcileTimer) clearInterval(reconcileTimer);
      await service.close();
      await provider.close();
      await database.close();
    },
  });
}

async function migrateOnly() {
  const config = loadSpawnConfig();
  await applyMigrations(config.DATABASE_URL, createLogger({ name: 'spawn', level: config.LOG_LEVEL }));
}

runMain({ serve, migrate: migrateOnly });
