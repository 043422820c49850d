import { randomBytes } from 'node:crypto';
import {
  type Clock,
  decodeCursor,
  forbidden,
  type Logger,
  newId,
  notFound,
  type Page,
  type SecretBox,
  toPage,
  upstreamUnavailable,
} from '@agentstack/core';
import { z } from 'zod';
import type { MailBackend } from './backend.js';
import type { MailboxRow, WebhookRow } from './db.js';
import type { Domains } from './domains.js';
import type { RelayStore } from './store.js';
import type { WebhookStore } from './webhooks/outbox.js';

const DAY_MS = 86_400_000;
const LOCAL_PART_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** 16 characters of [a-z0-9] (≈ 82 bits): random, unguessable, and safe in every mail system. */
export function randomLocalPart(length = 16): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 252) out += LOCAL_PART_ALPHABET[byte % 36];
      if (out.length === length) break;
    }
  }
  // Start with a letter: some systems dislike local parts that look like numbers.
  return /^[a-z]/.test(out) ? out : `m${out.slice(1)}`;
}

export interface MailboxView {
  id: string;
  address: string;
  domain: string;
  expiresAt: string;
  createdAt: string;
}

export interface WebhookView {
  id: string;
  url: string;
  status: 'active' | 'disabled';
  consecutiveFailures: number;
  disabledReason: string | null;
  disabledAt: string | null;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
  createdAt: string;
}

export interface MailboxDetails extends MailboxView {
  messages: { total: number; unread: number };
  sending: { today: number; dailyLimit: number };
  webhooks: WebhookView[];
}

export const mailboxView = (row: MailboxRow): MailboxView => ({
  id: row.id,
  address: row.address,
  domain: row.domain,
  expiresAt: row.expires_at.toISOString(),
  createdAt: (row.created_at as Date).toISOString(),
});

export const webhookView = (row: WebhookRow): WebhookView => ({
  id: row.id,
  url: row.url,
  status: row.status,
  consecutiveFailures: row.consecutive_failures,
  disabledReason: row.disabled_reason,
  disabledAt: row.disabled_at?.toISOString() ?? null,
  lastSuccessAt: row.last_success_at?.toISOString() ?? null,
  lastFailureAt: row.last_failure_at?.toISOString() ?? null,
  createdAt: (row.created_at as Date).toISOString(),
});

const cursorShape = z.object({ c: z.string(), i: z.string() });

/** Mailboxes: creation on a served domain, ownership, TTL, deletion with all their mail. */
export class Mailboxes {
  constructor(
    private readonly deps: {
      store: RelayStore;
      webhooks: WebhookStore;
      backend: MailBackend;
      domains: Domains;
      box: SecretBox;
      clock: Clock;
      log: Logger;
      maxTtlDays: number;
      sendDailyLimit: number;
    },
  ) {}

  async create(owner: string, input: { domain?: string | undefined; ttlMs: number }): Promise<MailboxRow> {
    const { name, domainId } = await this.deps.domains.domainForNewMailbox(owner, input.domain);
    const id = newId('mbx');
    const localPart = randomLocalPart();
    const address = `${localPart}@${name}`;
    const expiresAt = new Date(this.deps.clock.now().getTime() + input.ttlMs);
    let provisioned: Awaited<ReturnType<MailBackend['provisionMailbox']>>;
    try {
      provisioned = await this.deps.backend.provisionMailbox({ id, address, localPart, domain: name });
    } catch (err) {
      this.deps.log.error({ err }, 'mail backend could not create the mailbox');
      throw upstreamUnavailable('the mail backend could not create the mailbox; try again shortly');
    }
    try {
      return await this.deps.store.insertMailbox({
        id,
        owner,
        address,
        localPart,
        domain: name,
        domainId,
        expiresAt,
        backendRef: provisioned.ref,
        backendLogin: provisioned.login,
        backendSecret: provisioned.secret ? this.deps.box.seal(provisioned.secret, `mailbox:${id}`) : null,
      });
    } catch (err) {
      const draft: MailboxRow = {
        id,
        owner,
        address,
        local_part: localPart,
        domain: name,
        domain_id: domainId,
        backend_ref: provisioned.ref,
        backend_login: provisioned.login,
        backend_secret: null,
        expires_at: expiresAt,
        created_at: this.deps.clock.now(),
      };
      await this.deps.backend
        .removeMailbox(draft)
        .catch((cleanup) => this.deps.log.error({ err: cleanup, mailbox: id }, 'could not undo a backend mailbox'));
      throw err;
    }
  }

  /** A live mailbox of `owner`: 404 when it does not exist (or expired), 403 when another wallet owns it. */
  async getOwned(owner: string, id: string): Promise<MailboxRow> {
    const row = await this.deps.store.liveMailbox(id);
    if (!row) throw notFound('mailbox');
    if (row.owner !== owner) throw forbidden();
    return row;
  }

  async list(owner: string, limit: number, cursor: string | undefined): Promise<Page<MailboxView>> {
    const after = decodeCursor(cursor, cursorShape);
    const rows = await this.deps.store.listMailboxes(
      owner,
      limit,
      after ? { createdAt: after.c, id: after.i } : undefined,
    );
    return toPage(rows, limit, mailboxView, (r) => ({ c: (r.created_at as Date).toISOString(), i: r.id }));
  }

  async details(row: MailboxRow): Promise<MailboxDetails> {
    const [messages, hooks, today] = await Promise.all([
      this.deps.backend.countMessages(row).catch((err) => {
        this.deps.log.error({ err }, 'counting messages failed');
        throw upstreamUnavailable('the mail backend is unavailable; try again shortly');
      }),
      this.deps.webhooks.listForMailbox(row.id),
      this.deps.store.sendsToday(row.id, this.deps.clock.now().toISOString().slice(0, 10)),
    ]);
    return {
      ...mailboxView(row),
      messages,
      sending: { today, dailyLimit: this.deps.sendDailyLimit },
      webhooks: hooks.map(webhookView),
    };
  }

  /** Deletes the mailbox now: its backend data first (so nothing lingers if that fails), then the row. */
  async delete(row: MailboxRow): Promise<void> {
    try {
      await this.deps.backend.removeMailbox(row);
    } catch (err) {
      this.deps.log.error({ err, mailbox: row.id }, 'mail backend could not remove the mailbox');
      throw upstreamUnavailable('the mail backend could not remove the mailbox; try again shortly');
    }
    await this.deps.store.deleteMailbox(row.id);
  }

  /** Extends the TTL by whole days, up to the maximum lifetime counted from now. */
  async renew(row: MailboxRow, days: number): Promise<MailboxRow> {
    const maxExpiry = new Date(this.deps.clock.now().getTime() + this.deps.maxTtlDays * DAY_MS);
    const updated = await this.deps.store.extendMailbox(row.id, days, maxExpiry);
    if (!updated) throw notFound('mailbox');
    return updated;
  }

  /** Puts the expiry back (a renewal whose payment did not settle). */
  restoreExpiry(row: MailboxRow): Promise<void> {
    return this.deps.store.setMailboxExpiry(row.id, row.expires_at);
  }

  /** The sealed per-mailbox backend secret, opened. */
  backendSecret(row: MailboxRow): string | undefined {
    return row.backend_secret ? this.deps.box.openText(row.backend_secret, `mailbox:${row.id}`) : undefined;
  }
}
