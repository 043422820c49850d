import { fileURLToPath } from 'node:url';
import { type Clock, type Logger, type SecretBox, systemClock } from '@agentstack/core';
import { type Database, migrate } from '@agentstack/db';
import { type PaymentGate, x402MigrationsDir } from '@agentstack/x402';
import { relayApp } from './app.js';
import type { MailBackend } from './backend.js';
import { mxHost, type RelayConfig } from './config.js';
import type { RelayDatabase } from './db.js';
import { createDnsLookup, type DnsLookup } from './dns.js';
import { Domains } from './domains.js';
import { EmbeddedBackend } from './embedded/backend.js';
import { Ingest } from './embedded/ingest.js';
import { MessageStore } from './embedded/message-store.js';
import { Outbound } from './embedded/outbound.js';
import { startSmtpServer } from './embedded/smtp.js';
import { Mailboxes } from './mailboxes.js';
import { pricesFromConfig } from './prices.js';
import { Sender } from './sending.js';
import { stalwartBackend } from './stalwart/backend.js';
import { RelayStore } from './store.js';
import { Sweeper } from './sweeper.js';
import { outboxDispatcher } from './webhooks/dispatcher.js';
import { WebhookStore } from './webhooks/outbox.js';
import { WebhookWorker, webhookSecrets } from './webhooks/worker.js';

export const relayMigrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

/** Applies relay's migrations and the shared x402 ones (idempotency, payment claims) to its database. */
export async function migrateRelay(connectionString: string, log?: Logger): Promise<void> {
  await migrate({ connectionString, dir: relayMigrationsDir, log });
  await migrate({ connectionString, dir: x402MigrationsDir, table: 'x402_schema_migrations', log });
}

export interface RelayServiceOptions {
  config: RelayConfig;
  database: Database<RelayDatabase>;
  box: SecretBox;
  gate: PaymentGate;
  log: Logger;
  dns?: DnsLookup;
  clock?: Clock;
  /** How often the webhook worker looks for due retries on its own (it is also woken by new mail). */
  webhookPollMs?: number;
  /** A backend built elsewhere (e.g. a JMAP backend against a test server), instead of the configured one. */
  backend?: (parts: { store: RelayStore; box: SecretBox; log: Logger }) => MailBackend;
}

export interface RelayService {
  app: ReturnType<typeof relayApp>['app'];
  backend: MailBackend;
  domains: Domains;
  sweeper: Sweeper;
  webhookWorker: WebhookWorker;
  /** The embedded SMTP server's port once started (undefined for the Stalwart backend). */
  smtpPort(): number | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Builds relay from its configuration: stores, backend, domain logic, background workers and the HTTP app. */
export function createRelayService(options: RelayServiceOptions): RelayService {
  const { config, database, box, gate, log } = options;
  const db = database.db;
  const clock = options.clock ?? systemClock;
  const dns =
    options.dns ?? createDnsLookup({ servers: config.RELAY_DNS_SERVER, timeoutMs: config.RELAY_DNS_TIMEOUT_MS });
  const store = new RelayStore(db);
  const webhookStore = new WebhookStore(db);
  const secrets = webhookSecrets(box);
  const webhookWorker = new WebhookWorker({
    store: webhookStore,
    openSecret: secrets.open,
    log: log.child({ component: 'webhooks' }),
    timeoutMs: config.RELAY_WEBHOOK_TIMEOUT_MS,
    maxAttempts: config.RELAY_WEBHOOK_MAX_ATTEMPTS,
    retryBaseMs: config.RELAY_WEBHOOK_RETRY_BASE_MS,
    retryMaxMs: config.RELAY_WEBHOOK_RETRY_MAX_MS,
    disableAfter: config.RELAY_WEBHOOK_DISABLE_AFTER,
    allowPrivate: config.RELAY_WEBHOOK_ALLOW_PRIVATE,
    ...(options.webhookPollMs ? { pollMs: options.webhookPollMs } : {}),
  });
  const dispatcher = outboxDispatcher(webhookStore, webhookWorker);
  const hostname = config.RELAY_SMTP_HOSTNAME ?? mxHost(config);

  // Domains and the backend need each other (routing asks "is this ours?"; verification provisions at the
  // backend), so the backend reaches domains through this late-bound reference.
  let domains: Domains | undefined;
  const isOwnDomain = (name: string) => (domains as Domains).isOwnDomain(name);

  let embedded: EmbeddedBackend | undefined;
  let backend: MailBackend;
  const extraRoutes: NonNullable<Parameters<typeof relayApp>[0]['extraRoutes']>[] = [];
  if (options.backend) {
    backend = options.backend({ store, box, log });
  } else if (config.RELAY_BACKEND === 'embedded') {
    const messages = new MessageStore(db);
    const ingest = new Ingest({
      db,
      messages,
      webhooks: dispatcher,
      dns,
      hostname,
      log: log.child({ component: 'ingest' }),
    });
    const outbound = new Outbound({
      relayUrl: config.RELAY_OUTBOUND_SMTP_URL,
      local: () => ({
        host: ['0.0.0.0', '::'].includes(config.RELAY_SMTP_HOST) ? '127.0.0.1' : config.RELAY_SMTP_HOST,
        port: embedded?.smtpPort ?? config.RELAY_SMTP_PORT,
      }),
      isOwnDomain,
      hostname,
    });
    embedded = new EmbeddedBackend({
      messages,
      outbound,
      startSmtp: () =>
        startSmtpServer({
          host: config.RELAY_SMTP_HOST,
          port: config.RELAY_SMTP_PORT,
          hostname,
          maxMessageBytes: config.RELAY_MAX_MESSAGE_BYTES,
          maxRecipients: config.RELAY_MAX_RCPT_PER_MESSAGE,
          maxClients: config.RELAY_SMTP_MAX_CLIENTS,
          tls:
            config.RELAY_SMTP_TLS_KEY && config.RELAY_SMTP_TLS_CERT
              ? { keyPath: config.RELAY_SMTP_TLS_KEY, certPath: config.RELAY_SMTP_TLS_CERT }
              : undefined,
          log: log.child({ component: 'smtp' }),
          resolveRecipient: async (address) => {
            const at = address.lastIndexOf('@');
            const domain = address.slice(at + 1);
            if (at < 1 || !(await isOwnDomain(domain))) return { kind: 'relay_denied' };
            // Sub-addressing: local+tag@domain reaches local@domain.
            const local = address.slice(0, at).split('+')[0];
            const mailbox = await store.liveMailboxByAddress(`${local}@${domain}`);
            return mailbox ? { kind: 'accept', mailboxId: mailbox.id } : { kind: 'unknown' };
          },
          ingest: (raw, envelope) => ingest.ingest(raw, envelope),
        }),
    });
    backend = embedded;
  } else {
    const stalwart = stalwartBackend({
      config,
      store,
      box,
      dispatcher,
      db,
      isOwnDomain,
      log: log.child({ component: 'stalwart' }),
    });
    backend = stalwart.backend;
    extraRoutes.push(stalwart.routes);
  }

  domains = new Domains({
    store,
    box,
    dns,
    backend,
    settings: { mxHost: mxHost(config), spfInclude: config.RELAY_SPF_INCLUDE, serviceDomains: config.RELAY_DOMAINS },
    log,
  });
  const mailboxes = new Mailboxes({
    store,
    webhooks: webhookStore,
    backend,
    domains,
    box,
    clock,
    log,
    maxTtlDays: config.RELAY_MAX_TTL_DAYS,
    sendDailyLimit: config.RELAY_SEND_DAILY_LIMIT,
  });
  const sender = new Sender({
    store,
    backend,
    domains,
    clock,
    log,
    limits: {
      dailyLimit: config.RELAY_SEND_DAILY_LIMIT,
      maxRecipients: config.RELAY_MAX_RECIPIENTS,
      maxBytes: config.RELAY_MAX_SEND_BYTES,
    },
  });
  const sweeper = new Sweeper({
    db,
    store,
    backend,
    log: log.child({ component: 'sweeper' }),
    intervalMs: config.RELAY_SWEEP_INTERVAL_MS,
  });
  const smtpPort = () => embedded?.smtpPort;
  const { app } = relayApp({
    gate,
    prices: pricesFromConfig(config),
    mailboxes,
    domains,
    sender,
    backend,
    webhooks: webhookStore,
    sealWebhookSecret: secrets.seal,
    log,
    limits: {
      defaultTtlMs: config.RELAY_DEFAULT_TTL_HOURS * 3_600_000,
      maxTtlDays: config.RELAY_MAX_TTL_DAYS,
      maxSendBytes: config.RELAY_MAX_SEND_BYTES,
      allowPrivateWebhooks: config.RELAY_WEBHOOK_ALLOW_PRIVATE,
    },
    smtpPort,
    extraRoutes: (hono) => extraRoutes.flatMap((mount) => mount(hono)),
  });

  return {
    app,
    backend,
    domains,
    sweeper,
    webhookWorker,
    smtpPort,
    async start() {
      await backend.start();
      await (domains as Domains).ensureServiceDomains();
      webhookWorker.start();
      sweeper.start();
    },
    async stop() {
      await sweeper.stop();
      await webhookWorker.stop();
      await backend.stop();
    },
  };
}
