import type { Logger } from '@agentstack/core';
import type { Kysely } from '@agentstack/db';
import type { MailBackend } from './backend.js';
import type { RelayDatabase } from './db.js';
import type { RelayStore } from './store.js';

/**
 * Deletes expired mailboxes and everything in them. Each pass claims a batch with FOR UPDATE SKIP LOCKED
 * inside a transaction, removes each mailbox from the backend, deletes its row (messages, attachments,
 * webhooks and deliveries cascade) and commits; any number of replicas can sweep at once without taking
 * the same mailbox twice. A mailbox the backend fails to remove stays for the next pass. Expired
 * mailboxes are invisible to the API and refused at RCPT TO from the moment they expire, before the sweep.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly deps: {
      db: Kysely<RelayDatabase>;
      store: RelayStore;
      backend: MailBackend;
      log: Logger;
      intervalMs: number;
      batchSize?: number;
    },
  ) {}

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running = this.sweep()
        .catch((err) => this.deps.log.error({ err }, 'expiry sweep failed'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.deps.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.deps.intervalMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Sweeps until no expired mailbox is left unclaimed; returns the ids this call deleted. */
  async sweep(): Promise<string[]> {
    const deleted: string[] = [];
    for (;;) {
      const { claimed, removed } = await this.deps.db.transaction().execute(async (trx) => {
        const expired = await this.deps.store.claimExpiredMailboxes(trx, this.deps.batchSize ?? 50);
        const gone: string[] = [];
        for (const mailbox of expired) {
          try {
            await this.deps.backend.removeMailbox(mailbox);
          } catch (err) {
            // Left in place (and locked until commit): the next pass tries again.
            this.deps.log.warn({ err, mailbox: mailbox.id }, 'mail backend could not remove an expired mailbox');
            continue;
          }
          await this.deps.store.deleteMailbox(mailbox.id, trx);
          gone.push(mailbox.id);
        }
        return { claimed: expired.length, removed: gone };
      });
      deleted.push(...removed);
      if (removed.length > 0) this.deps.log.info({ count: removed.length }, 'expired mailboxes deleted');
      // Stop when nothing is left, or when this batch made no progress (the backend keeps failing).
      if (claimed === 0 || removed.length === 0) break;
    }
    return deleted;
  }
}
