/** What other packages (the SDK, benchmarks, webhook receivers) use from relay.sh. */
export { loadRelayConfig, type RelayConfig } from './config.js';
export type { RelayDatabase } from './db.js';
export { createDnsLookup, type DnsLookup } from './dns.js';
export { createRelayService, migrateRelay, type RelayService, relayMigrationsDir } from './service.js';
export { SIGNATURE_HEADER, signWebhook, verifyWebhook } from './webhooks/signature.js';
export { webhookSecrets } from './webhooks/worker.js';
