import type { Transaction } from '@agentstack/db';
import type { RelayDatabase } from '../db.js';
import type { WebhookStore } from './outbox.js';
import type { WebhookWorker } from './worker.js';

/**
 * The seam between relay and its webhook machinery: queue an event inside the caller's transaction (the
 * outbox), and wake delivery once it committed. Everything behind it (signing, outbox table, worker) can be
 * replaced by a shared webhooks package without touching the callers.
 */
export interface WebhookDispatcher {
  enqueue(
    trx: Transaction<RelayDatabase>,
    event: { mailboxId: string; event: string; data: unknown; createdAt: Date },
  ): Promise<number>;
  notify(): void;
}

export function outboxDispatcher(store: WebhookStore, worker: Pick<WebhookWorker, 'kick'>): WebhookDispatcher {
  return {
    enqueue: (trx, event) => store.enqueue(trx, event),
    notify: () => worker.kick(),
  };
}
