import { type Clock, createSecretBox, type Logger } from '@agentstack/core';
import type { Kysely } from '@agentstack/db';
import type { PaymentGate, X402Store } from '@agentstack/x402';
import { createApp } from './app.js';
import type { Catalog } from './catalog.js';
import { SshKeys } from './keys.js';
import { Ledger } from './ledger.js';
import type { ComputeProvider } from './providers/provider.js';
import { type ReconcileReport, reconcile } from './reconcile.js';
import { Servers } from './servers.js';
import type { SpawnDB } from './store.js';
import { Sweeper } from './sweeper.js';
import { HttpWebhookSender, type WebhookSender } from './webhooks.js';

export interface SpawnServiceOptions {
  db: Kysely<SpawnDB>;
  gate: PaymentGate;
  x402Store: X402Store;
  provider: ComputeProvider;
  catalog: Catalog;
  clock: Clock;
  log: Logger;
  masterSecret: Uint8Array;
  /** Defaults to signed HTTP POSTs; the shared webhooks package can be dropped in here. */
  webhookSender?: WebhookSender;
  allowPrivateWebhooks?: boolean;
  adminToken?: string | undefined;
}

/** Wires the service together (used by main.ts and by the tests, which hand in real peers). */
export function createSpawnService(options: SpawnServiceOptions) {
  const { db, provider, catalog, clock, log } = options;
  const userDataBox = createSecretBox(options.masterSecret, 'spawn:user-data');
  const webhookBox = createSecretBox(options.masterSecret, 'spawn:webhook-secret');
  const servers = new Servers({ db, provider, catalog, clock, userDataBox, webhookBox, log });
  const ledger = new Ledger(db);
  const keys = new SshKeys(db, provider);
  const sweeper = new Sweeper({
    db,
    catalog,
    clock,
    servers,
    webhookBox,
    sender: options.webhookSender ?? new HttpWebhookSender({ allowPrivate: options.allowPrivateWebhooks ?? false }),
    log,
  });
  provider.watch?.((providerId) => {
    void servers
      .sync(providerId)
      .catch((err) => log.warn({ err, providerId }, 'could not record a server state change'));
  });
  const runReconcile = (): Promise<ReconcileReport> => reconcile({ db, provider, servers, catalog, clock, log });
  const app = createApp({
    gate: options.gate,
    x402Store: options.x402Store,
    servers,
    keys,
    ledger,
    sweeper,
    catalog,
    clock,
    log,
    allowPrivateWebhooks: options.allowPrivateWebhooks ?? false,
    reconcile: runReconcile,
    adminToken: options.adminToken,
  });
  return {
    app,
    servers,
    ledger,
    keys,
    sweeper,
    reconcile: runReconcile,
    async close() {
      await sweeper.stop();
      await servers.close();
    },
  };
}

export type SpawnService = ReturnType<typeof createSpawnService>;
