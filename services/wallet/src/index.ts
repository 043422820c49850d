export { buildApp } from './app.js';
export { loadWalletConfig, type WalletConfig, walletConfigSchema } from './config.js';
export type { Ctx } from './context.js';
export { sendNow } from './send.js';
export { createWalletService, migrateWalletDatabase, type WalletService, walletMigrationsDir } from './service.js';
export { store } from './store.js';
export { entryView } from './views.js';
export { createWallet } from './wallets.js';
