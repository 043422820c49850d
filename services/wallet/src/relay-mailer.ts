import type { Clock, Logger } from '@agentstack/core';
import type { Kysely } from 'kysely';
import type { Mailer } from './context.js';
import type { WalletDB } from './db.js';

type PaidFetch = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * Notification email through relay.sh's HTTP contract (paid with x402 by the service's notifier account):
 * `POST /v1/mailboxes` once for a sender mailbox (recreated when it expires or vanishes), then
 * `POST /v1/mailboxes/:id/send {to, subject, text}` per email, with an Idempotency-Key so a retried send
 * is delivered once.
 */
export class RelayMailer implements Mailer {
  constructor(
    private readonly options: { relayUrl: string; fetch: PaidFetch; db: Kysely<WalletDB>; clock: Clock; log: Logger },
  ) {}

  private url(path: string) {
    return new URL(path, this.options.relayUrl.endsWith('/') ? this.options.relayUrl : `${this.options.relayUrl}/`)
      .href;
  }

  private async mailbox(fresh = false): Promise<{ id: string; address: string }> {
    const now = this.options.clock.now();
    if (!fresh) {
      const row = await this.options.db.selectFrom('relay_mailbox').selectAll().executeTakeFirst();
      if (row && row.expires_at.getTime() - now.getTime() > 10 * 60_000)
        return { id: row.mailbox_id, address: row.address };
    }
    const res = await this.options.fetch(this.url('v1/mailboxes'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    if (!res.ok)
      throw new Error(`relay.sh refused to create a mailbox: ${res.status} ${(await res.text()).slice(0, 200)}`);
    const body = (await res.json()) as { id?: string; address?: string; expiresAt?: string };
    if (!body.id || !body.address) throw new Error('relay.sh answered a mailbox without id or address');
    const expires = body.expiresAt ? new Date(body.expiresAt) : new Date(now.getTime() + 24 * 3_600_000);
    await this.options.db
      .insertInto('relay_mailbox')
      .values({ id: true, mailbox_id: body.id, address: body.address, expires_at: expires })
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({ mailbox_id: body.id!, address: body.address!, expires_at: expires }),
      )
      .execute();
    this.options.log.info({ mailbox: body.id, address: body.address }, 'relay.sh sender mailbox ready');
    return { id: body.id, address: body.address };
  }

  async send(message: {
    to: string;
    subject: string;
    text: string;
    idempotencyKey?: string;
  }): Promise<{ id?: string }> {
    const attempt = async (mailbox: { id: string }) =>
      this.options.fetch(this.url(`v1/mailboxes/${encodeURIComponent(mailbox.id)}/send`), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(message.idempotencyKey ? { 'idempotency-key': message.idempotencyKey } : {}),
        },
        body: JSON.stringify({ to: message.to, subject: message.subject, text: message.text }),
      });
    let res = await attempt(await this.mailbox());
    if (res.status === 404 || res.status === 410 || res.status === 403) {
      // Our sender mailbox expired or was removed: make a new one and try once more.
      res = await attempt(await this.mailbox(true));
    }
    if (!res.ok) throw new Error(`relay.sh answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const body = (await res.json().catch(() => ({}))) as { id?: string; messageId?: string };
    return { ...(body.id || body.messageId ? { id: body.id ?? body.messageId } : {}) };
  }
}
