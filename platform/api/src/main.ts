import { runMain, runUntilSignal } from '@agentstack/core';
import { migrate } from '@agentstack/db';
import { loadPlatformConfig } from './config.js';
import { migrationsDir } from './db.js';
import { seedModels } from './models.js';
import { createPlatform } from './platform.js';
import { ensureDevAdmin, seed } from './seed.js';

async function applyMigrations(databaseUrl: string) {
  await migrate({ connectionString: databaseUrl, dir: migrationsDir });
}

async function serve() {
  const config = loadPlatformConfig();
  await applyMigrations(config.DATABASE_URL);
  const platform = await createPlatform(config);
  const { log } = platform;
  // A first start gets the price list; later edits by admins are never overwritten.
  if ((await platform.store.countModels()) === 0) {
    log.info({ models: await seedModels(platform.store) }, 'seeded the models price list');
  }
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
  await runUntilSignal({
    app: platform.app,
    port: config.PLATFORM_API_PORT,
    hostname: config.PLATFORM_API_HOST,
    log,
    name: 'platform-api',
    onShutdown: () => platform.close(),
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
