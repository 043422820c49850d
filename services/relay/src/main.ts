import { join } from 'node:path';
import {
  createLogger,
  createSecretBox,
  loadOrCreateMasterSecret,
  masterSecretFromHex,
  runMain,
  runUntilSignal,
} from '@agentstack/core';
import { createDatabase } from '@agentstack/db';
import { PgX402Store, paymentGateFromConfig } from '@agentstack/x402';
import { loadRelayConfig } from './config.js';
import type { RelayDatabase } from './db.js';
import { createRelayService, migrateRelay } from './service.js';

async function serve() {
  const config = loadRelayConfig();
  const log = createLogger({ name: 'relay', level: config.LOG_LEVEL });
  await migrateRelay(config.DATABASE_URL, log);
  const database = createDatabase<RelayDatabase>({
    connectionString: config.DATABASE_URL,
    applicationName: 'relay',
    log,
  });
  const master = config.RELAY_MASTER_KEY
    ? masterSecretFromHex(config.RELAY_MASTER_KEY)
    : await loadOrCreateMasterSecret(join(config.SERVICE_DATA_DIR, 'master.key'));
  const { gate } = paymentGateFromConfig({
    config,
    payTo: config.PAY_TO_ADDRESS,
    serviceName: 'relay.sh',
    store: new PgX402Store(database.pool),
    log,
  });
  const service = createRelayService({ config, database, box: createSecretBox(master, 'relay'), gate, log });
  await service.start();
  await runUntilSignal({
    app: service.app,
    port: config.RELAY_PORT,
    hostname: config.RELAY_HOST,
    log,
    name: 'relay',
    onShutdown: async () => {
      await service.stop();
      await database.close();
    },
  });
}

async function migrateCommand() {
  const config = loadRelayConfig();
  await migrateRelay(config.DATABASE_URL, createLogger({ name: 'relay', level: config.LOG_LEVEL }));
}

runMain({ serve, migrate: migrateCommand });
