import type { Logger, SecretBox } from '@agentstack/core';
import { backoffDelay, createWebhookFetch, sendWebhook, type WebhookFetch } from '@agentstack/webhooks';
import type { ClaimedDelivery, WebhookStore } from './outbox.js';
import { SIGNATURE_HEADER } from './signature.js';

export interface WebhookWorkerOptions {
  store: WebhookStore;
  /** Opens a webhook's sealed secret. */
  openSecret: (webhookId: string, sealed: string) => string;
  log: Logger;
  timeoutMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  disableAfter: number;
  allowPrivate: boolean;
  /** Deliveries sent at once per claim. */
  batchSize?: number;
  /** The longest the worker sleeps before looking for due deliveries on its own. */
  pollMs?: number;
}

/**
 * Sends the outbox: claims due deliveries, signs each body with its webhook's secret and the current time,
 * POSTs it, and records the outcome (2xx delivered; anything else retried with backoff until the attempts
 * run out; a run of failures disables the webhook with the reason). `kick()` wakes it at once, so a message
 * committed on this replica is announced without waiting for the next poll.
 */
export class WebhookWorker {
  private running = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private kicked = false;
  private readonly fetch: WebhookFetch;

  constructor(private readonly options: WebhookWorkerOptions) {
    // Public addresses only (unless allowed), pinned at connection time; no redirects; answers capped at 64 KiB.
    this.fetch = createWebhookFetch({ timeoutMs: options.timeoutMs, allowPrivate: options.allowPrivate });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /** One pass: deliver everything due now. Returns how many deliveries were attempted. */
  async drain(): Promise<number> {
    let attempted = 0;
    for (;;) {
      const batch = await this.options.store.claimDue(this.options.batchSize ?? 20, this.options.timeoutMs * 2 + 5_000);
      if (batch.length === 0) return attempted;
      attempted += batch.length;
      await Promise.all(batch.map((claimed) => this.deliver(claimed)));
    }
  }

  private async run(): Promise<void> {
    const pollMs = this.options.pollMs ?? 1_000;
    while (this.running) {
      this.kicked = false;
      try {
        await this.drain();
      } catch (err) {
        this.options.log.warn({ err }, 'webhook delivery pass failed');
      }
      if (!this.running) break;
      if (this.kicked) continue;
      let waitMs = pollMs;
      try {
        const next = await this.options.store.nextDue();
        if (next) waitMs = Math.max(0, Math.min(pollMs, next.getTime() - Date.now()));
      } catch {
        // the database is unreachable; poll again later
      }
      if (this.kicked) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private async deliver({ delivery, webhook }: ClaimedDelivery): Promise<void> {
    const { store, log } = this.options;
    const body = JSON.stringify(delivery.payload);
    let statusCode: number | null = null;
    let error: string;
    try {
      const result = await sendWebhook({
        url: webhook.url,
        secret: this.options.openSecret(webhook.id, webhook.secret),
        body,
        id: delivery.id,
        event: delivery.event,
        fetch: this.fetch,
        timeoutMs: this.options.timeoutMs,
        headers: { signature: SIGNATURE_HEADER, id: 'x-relay-delivery', event: 'x-relay-event' },
        userAgent: 'relay.sh-webhooks/1',
        errorBodyChars: 120,
      });
      statusCode = result.statusCode;
      if (result.error === null) {
        await store.recordSuccess(delivery.id, webhook.id, result.statusCode ?? 200);
        return;
      }
      error = result.error;
    } catch (err) {
      error = (err as Error).message;
    }
    const failedAttempts = delivery.attempts + 1;
    const retryAt =
      failedAttempts >= this.options.maxAttempts
        ? null
        : new Date(
            Date.now() +
              backoffDelay(failedAttempts, { baseMs: this.options.retryBaseMs, maxMs: this.options.retryMaxMs }),
          );
    const { disabled } = await store.recordFailure({
      deliveryId: delivery.id,
      webhookId: webhook.id,
      statusCode,
      error,
      retryAt,
      disableAfter: this.options.disableAfter,
    });
    log.warn(
      { delivery: delivery.id, webhook: webhook.id, attempt: failedAttempts, error, retryAt, disabled },
      'webhook delivery failed',
    );
  }
}

/** Opens webhook secrets sealed with the webhook id as associated data. */
export const webhookSecrets = (box: SecretBox) => ({
  seal: (webhookId: string, secret: string) => box.seal(secret, `webhook:${webhookId}`),
  open: (webhookId: string, sealed: string) => box.openText(sealed, `webhook:${webhookId}`),
});
