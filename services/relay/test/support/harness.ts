import { randomBytes } from 'node:crypto';
import { createLogger, createSecretBox, listenOn, type RunningServer } from '@agentstack/core';
import { migrate } from '@agentstack/db';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { PaymentGate, PgX402Store, x402MigrationsDir } from '@agentstack/x402';
import { type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import type { PrivateKeyAccount } from 'viem/accounts';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { loadRelayConfig, type RelayConfig } from '../../src/config.js';
import type { RelayDatabase } from '../../src/db.js';
import type { DnsLookup } from '../../src/dns.js';
import { createRelayService, type RelayService, relayMigrationsDir } from '../../src/service.js';

/** A fresh relay database (relay's and x402's migrations applied). */
export async function relayTestDatabase(): Promise<TestDatabase<RelayDatabase>> {
  const database = await createTestDatabase<RelayDatabase>({ migrationsDir: relayMigrationsDir });
  await migrate({ connectionString: database.url, dir: x402MigrationsDir, table: 'x402_schema_migrations' });
  return database;
}

export interface RelayHarness {
  url: string;
  smtpPort: number;
  config: RelayConfig;
  service: RelayService;
  database: TestDatabase<RelayDatabase>;
  bed: PaymentTestbed;
  payTo: `0x${string}`;
  /** A funded payer and its paying fetch (official @x402/fetch). */
  payer(usdc?: bigint): Promise<{ account: PrivateKeyAccount; fetch: typeof fetch; spent: () => bigint }>;
  /** JSON request through a paying fetch. */
  call(
    pay: typeof fetch,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  dns?: DnsLookup;
  /** Reuse a payment testbed (several harnesses in one file). */
  bed?: PaymentTestbed;
  backend?: Parameters<typeof createRelayService>[0]['backend'];
}

/** relay in-process on free ports with a real database, devnet, facilitator and SMTP listener. */
export async function startRelay(options: HarnessOptions = {}): Promise<RelayHarness> {
  const ownBed = !options.bed;
  const bed = options.bed ?? (await startPaymentTestbed());
  const database = await relayTestDatabase();
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const config = loadRelayConfig({
    CHAIN: 'devnet',
    BASE_RPC_URL: bed.devnet.rpcUrl,
    FACILITATOR_URL: bed.facilitatorUrl,
    DATABASE_URL: database.url,
    PAY_TO_ADDRESS: payTo,
    RELAY_DOMAINS: 'relay.test,relay2.test',
    RELAY_SMTP_PORT: '0',
    RELAY_WEBHOOK_ALLOW_PRIVATE: 'true',
    RELAY_WEBHOOK_RETRY_BASE_MS: '100',
    RELAY_WEBHOOK_RETRY_MAX_MS: '2000',
    RELAY_SWEEP_INTERVAL_MS: '60000',
    RELAY_DNS_TIMEOUT_MS: '500',
    LOG_LEVEL: 'silent',
    ...options.env,
  });
  const log = createLogger({ name: 'relay-test', level: config.LOG_LEVEL });
  const gate = new PaymentGate({
    facilitator: bed.facilitator,
    network: bed.devnet.chain.network,
    payTo,
    asset: bed.devnet.chain.usdc,
    store: new PgX402Store(database.pool),
    serviceName: 'relay.sh',
  });
  const service = createRelayService({
    config,
    database: { db: database.db, pool: database.pool, close: async () => {} },
    box: createSecretBox(randomBytes(32), 'relay'),
    gate,
    log,
    webhookPollMs: 100,
    ...(options.dns ? { dns: options.dns } : {}),
    ...(options.backend ? { backend: options.backend } : {}),
  });
  await service.start();
  const server: RunningServer = await listenOn(service.app, { port: 0 });
  return {
    url: server.url,
    smtpPort: service.smtpPort() ?? 0,
    config,
    service,
    database,
    bed,
    payTo,
    async payer(usdc = 10_000_000n) {
      const account = await bed.fundedAccount(usdc);
      const paying = bed.payingFetch(account);
      return { account, fetch: paying.fetch as typeof fetch, spent: paying.spent };
    },
    async call(pay, method, path, body, headers = {}) {
      const res = await pay(`${server.url}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON (an attachment)
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      await server.close();
      await service.stop();
      await database.drop();
      if (ownBed) await bed.stop();
    },
  };
}
