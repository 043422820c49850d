import { newId } from '@agentstack/core';
import { type Kysely, sql, type Transaction } from '@agentstack/db';
import type { DeliveryRow, RelayDatabase, WebhookRow } from '../db.js';

type Db = Kysely<RelayDatabase> | Transaction<RelayDatabase>;

/** A delivery claimed for sending, with what is needed to send it. */
export interface ClaimedDelivery {
  delivery: DeliveryRow;
  webhook: WebhookRow;
}

/**
 * SQL for webhooks and their deliveries. Deliveries are an outbox: `enqueue` runs inside the transaction
 * that stores what they announce, so a committed message always has its notifications and a rolled-back
 * one never does.
 */
export class WebhookStore {
  constructor(readonly db: Kysely<RelayDatabase>) {}

  create(w: { id: string; mailboxId: string; url: string; sealedSecret: string }): Promise<WebhookRow> {
    return this.db
      .insertInto('webhooks')
      .values({ id: w.id, mailbox_id: w.mailboxId, url: w.url, secret: w.sealedSecret })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  listForMailbox(mailboxId: string): Promise<WebhookRow[]> {
    return this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('mailbox_id', '=', mailboxId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  get(mailboxId: string, id: string): Promise<WebhookRow | undefined> {
    return this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', id)
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirst();
  }

  async delete(mailboxId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('webhooks')
      .where('id', '=', id)
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** One pending delivery per active webhook of the mailbox; returns how many were queued. */
  async enqueue(db: Db, input: { mailboxId: string; event: string; data: unknown; createdAt: Date }): Promise<number> {
    const hooks = await db
      .selectFrom('webhooks')
      .select('id')
      .where('mailbox_id', '=', input.mailboxId)
      .where('status', '=', 'active')
      .execute();
    if (hooks.length === 0) return 0;
    await db
      .insertInto('webhook_deliveries')
      .values(
        hooks.map((hook) => {
          const id = newId('whd');
          const payload = { id, event: input.event, createdAt: input.createdAt.toISOString(), data: input.data };
          return {
            id,
            webhook_id: hook.id,
            mailbox_id: input.mailboxId,
            event: input.event,
            payload: JSON.stringify(payload),
          };
        }),
      )
      .execute();
    return hooks.length;
  }

  /**
   * Claims due deliveries for `leaseMs`: their next attempt moves into the future, so a replica that dies
   * mid-delivery leaves them to be retried by another when the lease runs out. Locked rows are skipped.
   * Bookkeeping of the outbox commits asynchronously (no fsync wait): a crash can at worst forget a claim or a
   * success, which means one more delivery of the same event — deliveries are at least once anyway. The
   * events themselves are written durably, with the message they announce.
   */
  async claimDue(limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    const rows = await this.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL synchronous_commit = off`.execute(trx);
      const claimed = await sql<DeliveryRow & { w: WebhookRow }>`
        WITH due AS (
          SELECT id FROM webhook_deliveries
          WHERE status = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED
        ), claimed AS (
          UPDATE webhook_deliveries d
          SET next_attempt_at = now() + make_interval(secs => ${leaseMs / 1000})
          FROM due WHERE d.id = due.id
          RETURNING d.*
        )
        SELECT claimed.*, to_jsonb(w) AS w FROM claimed JOIN webhooks w ON w.id = claimed.webhook_id`.execute(trx);
      return claimed.rows;
    });
    return rows.map(({ w, ...delivery }) => ({
      delivery: delivery as DeliveryRow,
      webhook: {
        ...w,
        disabled_at: w.disabled_at ? new Date(w.disabled_at) : null,
        last_success_at: w.last_success_at ? new Date(w.last_success_at) : null,
        last_failure_at: w.last_failure_at ? new Date(w.last_failure_at) : null,
        created_at: new Date(w.created_at as unknown as string),
      },
    }));
  }

  async recordSuccess(deliveryId: string, webhookId: string, statusCode: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL synchronous_commit = off`.execute(trx);
      await sql`
        WITH delivered AS (
          UPDATE webhook_deliveries
          SET status = 'delivered', attempts = attempts + 1, last_attempt_at = now(), last_status_code = ${statusCode},
              last_error = NULL, delivered_at = now()
          WHERE id = ${deliveryId}
          RETURNING webhook_id
        )
        UPDATE webhooks SET consecutive_failures = 0, last_success_at = now()
        WHERE id = ${webhookId} AND EXISTS (SELECT 1 FROM delivered)`.execute(trx);
    });
  }

  /**
   * Records a failed attempt: the delivery is retried at `retryAt` or, with null, given up. The webhook's
   * run of consecutive failures grows, and at `disableAfter` the webhook is disabled with the reason, and
   * its other pending deliveries are closed. Returns whether this failure disabled it.
   */
  async recordFailure(input: {
    deliveryId: string;
    webhookId: string;
    statusCode: number | null;
    error: string;
    retryAt: Date | null;
    disableAfter: number;
  }): Promise<{ disabled: boolean }> {
    return this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('webhook_deliveries')
        .set({
          status: input.retryAt ? 'pending' : 'failed',
          attempts: sql<number>`attempts + 1`,
          last_attempt_at: sql<Date>`now()`,
          last_status_code: input.statusCode,
          last_error: input.error.slice(0, 500),
          next_attempt_at: input.retryAt ?? sql<Date>`now()`,
        })
        .where('id', '=', input.deliveryId)
        .execute();
      const webhook = await trx
        .updateTable('webhooks')
        .set({ consecutive_failures: sql<number>`consecutive_failures + 1`, last_failure_at: sql<Date>`now()` })
        .where('id', '=', input.webhookId)
        .returning(['consecutive_failures', 'status'])
        .executeTakeFirst();
      if (webhook === undefined) return { disabled: false };
      if (webhook.status !== 'active' || webhook.consecutive_failures < input.disableAfter) return { disabled: false };
      const reason =
        `disabled after ${webhook.consecutive_failures} consecutive failed deliveries; last: ${input.error}`.slice(
          0,
          500,
        );
      await trx
        .updateTable('webhooks')
        .set({ status: 'disabled', disabled_reason: reason, disabled_at: sql<Date>`now()` })
        .where('id', '=', input.webhookId)
        .execute();
      await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'failed', last_error: 'webhook disabled before this delivery could be retried' })
        .where('webhook_id', '=', input.webhookId)
        .where('status', '=', 'pending')
        .execute();
      return { disabled: true };
    });
  }

  /** Sets a disabled webhook active again (its failure run starts over). */
  async enable(mailboxId: string, id: string): Promise<WebhookRow | undefined> {
    return this.db
      .updateTable('webhooks')
      .set({ status: 'active', consecutive_failures: 0, disabled_reason: null, disabled_at: null })
      .where('id', '=', id)
      .where('mailbox_id', '=', mailboxId)
      .returningAll()
      .executeTakeFirst();
  }

  /** The delivery log of a mailbox, newest first (`limit + 1` rows from the cursor). */
  listDeliveries(
    mailboxId: string,
    limit: number,
    options: { webhookId?: string | undefined; after?: { createdAt: string; id: string } | undefined },
  ): Promise<DeliveryRow[]> {
    let query = this.db.selectFrom('webhook_deliveries').selectAll().where('mailbox_id', '=', mailboxId);
    if (options.webhookId) query = query.where('webhook_id', '=', options.webhookId);
    if (options.after) {
      query = query.where(
        sql<boolean>`(created_at, id) < (${options.after.createdAt}::timestamptz, ${options.after.id})`,
      );
    }
    return query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
  }

  /** When the next pending delivery is due (to sleep until then), or undefined when none is. */
  async nextDue(): Promise<Date | undefined> {
    const row = await this.db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.min('next_attempt_at').as('next'))
      .where('status', '=', 'pending')
      .executeTakeFirst();
    return (row?.next as Date | null | undefined) ?? undefined;
  }
}
