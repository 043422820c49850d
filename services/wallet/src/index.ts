export { buildApp, entryView } from './app.js';
export { loadWalletConfig, type WalletConfig, walletConfigSchema } from './config.js';
export { createWalletService, migrateWalletDatabase, type WalletService, walletMigrationsDir } from './service.js';
