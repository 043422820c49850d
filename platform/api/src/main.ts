import { createLogger, listenOn, runMain, runUntilSignal } from '@agentstack/core';
import { migrate } from '@agentstack/db';
import { loadPlatformConfig } from './config.js';
import { migrationsDir } from './db.js';
import { NO_PROVIDER_MESSAGE } from './llm-proxy/providers/registry.js';
import { ensureDemoModel, seedModels } from './models.js';
import { createOrchestrator, type TenantOrchestrator } from './orchestrator/index.js';
import { createPlatform, type Platform } from './platform.js';
import { resolveSecrets } from './secrets.js';
import { ensureDevAdmin, seed } from './seed.js';

async function applyMigrations(databaseUrl: string) {
  await migrate({ connectionString: databaseUrl, dir: migrationsDir });
}

async function serve() {
  const config = loadPlatformConfig();
  await applyMigrations(config.DATABASE_URL);
  const log = createLogger({ name: 'platform-api', level: config.LOG_LEVEL });
  let orchestrator: TenantOrchestrator | null = null;
  let runtimesUnavailable: string | undefined;
  // Tenants reach this process's apps through their gateway sockets (served in-process, stamped with the
  // tenant); the apps exist once the platform is built, before any runtime can connect.
  let built: Platform | undefined;
  const apps = {
    llmProxy: () => (built as Platform).proxyApp,
    platformApi: () => (built as Platform).app,
  };
  try {
    const { authSecret } = await resolveSecrets(config);
    orchestrator = await createOrchestrator(config, { log, authSecret, apps });
  } catch (err) {
    // The API still serves accounts and the LLM proxy; chat says why agents cannot run.
    runtimesUnavailable = `the ${config.TENANT_RUNTIME_BACKEND} runtime backend cannot run here: ${(err as Error).message}`;
    log.error({ backend: config.TENANT_RUNTIME_BACKEND }, runtimesUnavailable);
  }
  const defaultModel = config.TENANT_DEFAULT_MODEL ?? (config.DEMO_MODEL_URL ? 'demo' : undefined);
  const platform = await createPlatform(config, {
    log,
    ...(orchestrator ? { orchestrator } : {}),
    ...(runtimesUnavailable ? { runtimesUnavailable } : {}),
    ...(defaultModel ? { runtimeEnv: { RUNTIME_DEFAULT_MODEL: defaultModel } } : {}),
  });
  built = platform;
  if (orchestrator) log.info({ backend: orchestrator.backend }, 'tenant runtimes ready');
  // A first start gets the price list; later edits by admins are never overwritten.
  if ((await platform.store.countModels()) === 0) {
    log.info({ models: await seedModels(platform.store) }, 'seeded the models price list');
  }
  // `start --demo` runs the fixture model server and hands us its URL: make sure the demo model exists.
  if (config.DEMO_MODEL_URL && (await ensureDemoModel(platform.store))) log.info('added the demo model');
  const devAdmin = await ensureDevAdmin(platform);
  if (devAdmin) log.info({ email: devAdmin.email, file: devAdmin.file }, 'dev admin (local only)');
  log.info(
    {
      publicUrl: config.PLATFORM_PUBLIC_URL,
      oauth: [...config.socialProviders.map((p) => p.id as string), ...(config.oidc ? ['oidc'] : [])],
      production: config.production,
    },
    'auth configured',
  );
  const providers = (['openai', 'anthropic', 'google', 'openai-compatible'] as const).filter((p) =>
    platform.providers.available({ provider: p, demo: false }),
  );
  if (providers.length === 0 && !platform.providers.demo) log.warn(NO_PROVIDER_MESSAGE);
  else log.info({ providers, demo: platform.providers.demo }, 'LLM providers configured');
  platform.startBackground();
  // Runtimes end with the process that ran them: bring back those of active tenants, a few at a time.
  void platform.runtimes?.resumeAll();
  const proxyServer = await listenOn(platform.proxyApp, {
    port: config.LLM_PROXY_PORT,
    hostname: config.LLM_PROXY_HOST,
  });
  log.info({ url: proxyServer.url }, 'llm-proxy listening');
  await runUntilSignal({
    app: platform.app,
    port: config.PLATFORM_API_PORT,
    hostname: config.PLATFORM_API_HOST,
    log,
    name: 'platform-api',
    onShutdown: async () => {
      // Calls in flight are stopped and billed for what they produced before the listener goes.
      await platform.proxy.close();
      await proxyServer.close();
      await platform.close();
    },
  });
}

async function migrateCommand() {
  const config = loadPlatformConfig();
  await applyMigrations(config.DATABASE_URL);
  console.log('platform-api: migrations applied');
}

async function seedCommand() {
  const config = loadPlatformConfig();
  await applyMigrations(config.DATABASE_URL);
  const platform = await createPlatform(config, {});
  try {
    const { models, devAdmin } = await seed(platform);
    console.log(`platform-api: models inserted: ${models.length ? models.join(', ') : 'none (all present)'}`);
    if (devAdmin) console.log(`platform-api: dev admin (local only): ${devAdmin.email}  password ${devAdmin.password}`);
  } finally {
    await platform.close();
  }
}

runMain({ serve, migrate: migrateCommand, seed: seedCommand });
