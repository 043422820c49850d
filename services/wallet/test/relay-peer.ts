import { randomBytes } from 'node:crypto';
import { createLogger, createSecretBox, listenOn, type RunningServer } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import {
  createRelayService,
  loadRelayConfig,
  migrateRelay,
  type RelayDatabase,
  type RelayService,
} from '@agentstack/relay';
import { PaymentGate, PgX402Store } from '@agentstack/x402';
import type { PaymentTestbed } from '@agentstack/x402/testing';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/**
 * The real relay.sh (embedded backend) in-process, on the same devnet and facilitator as wallet.sh: its own
 * database, x402 gate and SMTP listener on a free port. Mail to its own domains is delivered to itself, so a
 * notification sent through it can be read back from the recipient's mailbox. DNS answers nothing (no network
 * here); relay then records the authentication results as missing, which does not stop delivery.
 */
export interface RelayPeer {
  url: string;
  domain: string;
  service: RelayService;
  stop(): Promise<void>;
}

export async function startRelayPeer(bed: PaymentTestbed): Promise<RelayPeer> {
  const database: TestDatabase<RelayDatabase> = await createTestDatabase<RelayDatabase>();
  await migrateRelay(database.url);
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const domain = 'relay.test';
  const config = loadRelayConfig({
    CHAIN: 'devnet',
    BASE_RPC_URL: bed.devnet.rpcUrl,
    FACILITATOR_URL: bed.facilitatorUrl,
    DATABASE_URL: database.url,
    PAY_TO_ADDRESS: payTo,
    RELAY_DOMAINS: domain,
    RELAY_SMTP_PORT: '0',
    RELAY_DNS_TIMEOUT_MS: '200',
    LOG_LEVEL: 'silent',
  });
  const gate = new PaymentGate({
    facilitator: bed.facilitator,
    network: bed.devnet.chain.network,
    payTo,
    asset: bed.devnet.chain.usdc,
    store: new PgX402Store(database.pool),
    serviceName: 'relay.sh',
  });
  const noDns = {
    resolve: async () => {
      throw Object.assign(new Error('queryTxt ENOTFOUND'), { code: 'ENOTFOUND' });
    },
  };
  const service = createRelayService({
    config,
    database: { db: database.db, pool: database.pool, close: async () => {} },
    box: createSecretBox(randomBytes(32), 'relay'),
    gate,
    log: createLogger({ name: 'relay-peer', level: 'silent' }),
    dns: noDns,
  });
  await service.start();
  const server: RunningServer = await listenOn(service.app, { port: 0 });
  return {
    url: server.url,
    domain,
    service,
    async stop() {
      await server.close();
      await service.stop();
      await database.drop();
    },
  };
}
