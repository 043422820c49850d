import { createLogger, runMain, runUntilSignal } from '@agentstack/core';
import { loadWalletConfig } from './config.js';
import { createWalletService, migrateWalletDatabase } from './service.js';

async function serve() {
  const config = loadWalletConfig();
  const log = createLogger({ name: 'wallet', level: config.LOG_LEVEL });
  await migrateWalletDatabase(config.DATABASE_URL, log);
  const service = await createWalletService(config, { log });
  await service.start();
  await runUntilSignal({
    app: service.app,
    port: config.WALLET_PORT,
    hostname: config.WALLET_HOST,
    log,
    name: 'wallet.sh',
    onShutdown: () => service.stop(),
  });
}

async function migrateCommand() {
  const config = loadWalletConfig();
  await migrateWalletDatabase(config.DATABASE_URL, createLogger({ name: 'wallet', level: config.LOG_LEVEL }));
}

runMain({ serve, migrate: migrateCommand });
