import { decodeCursor, formatUsdc, newId, toPage } from '@agentstack/core';
import { backoffDelay } from '@agentstack/webhooks';
import { type Kysely, sql, type Transaction } from 'kysely';
import { z } from 'zod';
import type { Ctx } from './context.js';
import { queryableOf, type WalletDB, type WalletRow } from './db.js';

export type OwnerEvent =
  | 'fund_request.created'
  | 'fund_request.approved'
  | 'fund_request.denied'
  | 'fund_request.expired'
  | 'wallet.paused'
  | 'wallet.breaker_tripped';

/** Events that also go out by email when the owner gave an address and relay.sh is configured. */
const EMAILED: OwnerEvent[] = ['fund_request.created', 'wallet.paused', 'wallet.breaker_tripped'];

/**
 * Tells a wallet's owner about something, inside the transaction that made it happen: a signed webhook
 * (through the outbox) and, for the events that need a human, an email queued for relay.sh.
 */
export async function notifyOwner(
  ctx: Ctx,
  trx: Transaction<WalletDB> | Kysely<WalletDB>,
  wallet: Pick<WalletRow, 'address' | 'label' | 'owner'>,
  type: OwnerEvent,
  data: Record<string, unknown>,
): Promise<void> {
  await ctx.outbox.enqueue(
    { owner: wallet.address, type, data: { wallet: wallet.address, ...data } },
    queryableOf(trx),
  );
  if (!ctx.mailer || !EMAILED.includes(type)) return;
  const settings = await trx
    .selectFrom('notification_settings')
    .select('email')
    .where('wallet', '=', wallet.address)
    .executeTakeFirst();
  if (!settings?.email) return;
  const { subject, text } = emailFor(ctx, wallet, type, data);
  const now = ctx.clock.now();
  await trx
    .insertInto('email_outbox')
    .values({
      id: newId('eml'),
      wallet: wallet.address,
      recipient: settings.email,
      subject,
      body: text,
      event_type: type,
      next_attempt_at: now,
      created_at: now,
    })
    .execute();
}

function emailFor(
  ctx: Ctx,
  wallet: Pick<WalletRow, 'address' | 'label'>,
  type: OwnerEvent,
  data: Record<string, unknown>,
): { subject: string; text: string } {
  const name = wallet.label ? `${wallet.label} (${wallet.address})` : wallet.address;
  if (type === 'fund_request.created') {
    return {
      subject: `Funding request: ${data.amount} USDC for ${wallet.label ?? wallet.address}`,
      text: [
        `Your agent wallet ${name} asks for ${data.amount} USDC.`,
        `Reason: ${data.reason}`,
        '',
        `Request: ${data.id} (expires ${data.expiresAt})`,
        `Approve: POST /v1/fund-requests/${data.id}/approve with an EIP-3009 transferWithAuthorization you sign`,
        `(from you to ${wallet.address}, exactly ${data.amountAtomic} atomic USDC on ${ctx.settings.network}); you pay no gas.`,
        `Deny: POST /v1/fund-requests/${data.id}/deny`,
      ].join('\n'),
    };
  }
  return {
    subject: `Wallet ${wallet.label ?? wallet.address} paused`,
    text: `Your agent wallet ${name} was paused (${data.scope}): ${data.reason}\nResume it with POST /v1/wallets/${wallet.address}/resume.`,
  };
}

/**
 * Sends queued notification emails through the mailer, retrying with backoff; rows are claimed with
 * `FOR UPDATE SKIP LOCKED` so several replicas can run this.
 */
export async function sendDueEmails(ctx: Ctx, limit = 10, maxAttempts = 8): Promise<number> {
  if (!ctx.mailer) return 0;
  const now = ctx.clock.now();
  const claimed = await ctx.db
    .updateTable('email_outbox')
    .set({ locked_until: new Date(now.getTime() + 60_000), attempts: sql`attempts + 1` })
    .where(
      'id',
      'in',
      ctx.db
        .selectFrom('email_outbox')
        .select('id')
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .returningAll()
    .execute();
  for (const email of claimed) {
    try {
      const sent = await ctx.mailer.send({
        to: email.recipient,
        subject: email.subject,
        text: email.body,
        idempotencyKey: email.id,
      });
      await ctx.db
        .updateTable('email_outbox')
        .set({
          status: 'sent',
          sent_at: ctx.clock.now(),
          locked_until: null,
          relay_message_id: sent.id ?? null,
          last_error: null,
        })
        .where('id', '=', email.id)
        .execute();
    } catch (err) {
      const message = ((err as Error).message ?? String(err)).slice(0, 500);
      ctx.log.warn({ email: email.id, error: message }, 'notification email failed');
      await ctx.db
        .updateTable('email_outbox')
        .set({
          status: email.attempts >= maxAttempts ? 'failed' : 'pending',
          next_attempt_at: new Date(
            ctx.clock.now().getTime() + backoffDelay(email.attempts, { baseMs: 5_000, maxMs: 3_600_000 }),
          ),
          locked_until: null,
          last_error: message,
        })
        .where('id', '=', email.id)
        .execute();
    }
  }
  return claimed.length;
}

export const amountFields = (atomic: bigint) => ({ amount: formatUsdc(atomic), amountAtomic: atomic.toString() });

const emailCursor = z.object({ t: z.string(), id: z.string() });

/** The email side of the delivery log: what was queued for the owner, and what became of it. */
export async function emailLog(ctx: Ctx, wallet: string, query: { limit: number; cursor?: string }) {
  const after = decodeCursor(query.cursor, emailCursor);
  let rows = ctx.db
    .selectFrom('email_outbox')
    .select([
      'id',
      'recipient',
      'subject',
      'event_type',
      'status',
      'attempts',
      'last_error',
      'relay_message_id',
      'created_at',
      'sent_at',
    ])
    .where('wallet', '=', wallet)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(query.limit + 1);
  if (after) rows = rows.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(new Date(after.t), after.id)));
  return toPage(
    await rows.execute(),
    query.limit,
    (r) => ({
      id: r.id,
      to: r.recipient,
      subject: r.subject,
      eventType: r.event_type,
      status: r.status,
      attempts: r.attempts,
      lastError: r.last_error,
      relayMessageId: r.relay_message_id,
      createdAt: r.created_at.toISOString(),
      sentAt: r.sent_at?.toISOString() ?? null,
    }),
    (r) => ({ t: r.created_at.toISOString(), id: r.id }),
  );
}
