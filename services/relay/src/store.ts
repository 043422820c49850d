import { type Kysely, sql, type Transaction } from '@agentstack/db';
import type { DomainRow, MailboxRow, RelayDatabase } from './db.js';

type Db = Kysely<RelayDatabase> | Transaction<RelayDatabase>;

export interface NewMailbox {
  id: string;
  owner: string;
  address: string;
  localPart: string;
  domain: string;
  domainId: string | null;
  expiresAt: Date;
  backendRef?: string | null;
  backendLogin?: string | null;
  backendSecret?: string | null;
}

export interface NewDomain {
  id: string;
  owner: string | null;
  name: string;
  dkimSelector: string;
  dkimPublicKey: string;
  dkimPrivateKeySealed: string;
}

/** SQL for mailboxes, domains and send counters. Messages and webhooks have their own stores. */
export class RelayStore {
  constructor(readonly db: Kysely<RelayDatabase>) {}

  // ---- mailboxes

  async insertMailbox(m: NewMailbox, db: Db = this.db): Promise<MailboxRow> {
    return db
      .insertInto('mailboxes')
      .values({
        id: m.id,
        owner: m.owner,
        address: m.address,
        local_part: m.localPart,
        domain: m.domain,
        domain_id: m.domainId,
        expires_at: m.expiresAt,
        backend_ref: m.backendRef ?? null,
        backend_login: m.backendLogin ?? null,
        backend_secret: m.backendSecret ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async setMailboxBackend(
    id: string,
    backend: { ref: string | null; login: string | null; secret: string | null },
    db: Db = this.db,
  ): Promise<void> {
    await db
      .updateTable('mailboxes')
      .set({ backend_ref: backend.ref, backend_login: backend.login, backend_secret: backend.secret })
      .where('id', '=', id)
      .execute();
  }

  /** A mailbox row by id, expired or not (backends need the credentials of mailboxes being swept). */
  mailboxRow(id: string, db: Db = this.db): Promise<MailboxRow | undefined> {
    return db.selectFrom('mailboxes').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A live (unexpired) mailbox by id, whoever owns it. */
  liveMailbox(id: string, db: Db = this.db): Promise<MailboxRow | undefined> {
    return db
      .selectFrom('mailboxes')
      .selectAll()
      .where('id', '=', id)
      .where('expires_at', '>', sql<Date>`now()`)
      .executeTakeFirst();
  }

  /** A live mailbox by its address (lower-case), for routing incoming mail. */
  liveMailboxByAddress(address: string, db: Db = this.db): Promise<MailboxRow | undefined> {
    return db
      .selectFrom('mailboxes')
      .selectAll()
      .where('address', '=', address)
      .where('expires_at', '>', sql<Date>`now()`)
      .executeTakeFirst();
  }

  /** The caller's live mailboxes, newest first, `limit + 1` rows from the cursor position. */
  listMailboxes(owner: string, limit: number, after?: { createdAt: string; id: string }): Promise<MailboxRow[]> {
    let query = this.db
      .selectFrom('mailboxes')
      .selectAll()
      .where('owner', '=', owner)
      .where('expires_at', '>', sql<Date>`now()`);
    if (after) {
      query = query.where(sql<boolean>`(created_at, id) < (${after.createdAt}::timestamptz, ${after.id})`);
    }
    return query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
  }

  async deleteMailbox(id: string, db: Db = this.db): Promise<boolean> {
    const result = await db.deleteFrom('mailboxes').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Extends a live mailbox's expiry by `days` (capped at `maxExpiry`); undefined when it is gone. */
  async extendMailbox(id: string, days: number, maxExpiry: Date): Promise<MailboxRow | undefined> {
    return this.db
      .updateTable('mailboxes')
      .set({
        expires_at: sql<Date>`least(expires_at + make_interval(days => ${days}), ${maxExpiry}::timestamptz)`,
      })
      .where('id', '=', id)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
  }

  /** Undoes `extendMailbox` for a renewal whose payment failed to settle. */
  async setMailboxExpiry(id: string, expiresAt: Date): Promise<void> {
    await this.db.updateTable('mailboxes').set({ expires_at: expiresAt }).where('id', '=', id).execute();
  }

  countMailboxesOnDomain(domainId: string): Promise<number> {
    return this.db
      .selectFrom('mailboxes')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('domain_id', '=', domainId)
      .executeTakeFirstOrThrow()
      .then((r) => Number(r.n));
  }

  /**
   * Claims up to `limit` expired mailboxes for deletion: locked rows are skipped, so several replicas
   * sweeping at once never take the same mailbox. Call inside a transaction and delete what it returns.
   */
  claimExpiredMailboxes(trx: Transaction<RelayDatabase>, limit: number): Promise<MailboxRow[]> {
    return trx
      .selectFrom('mailboxes')
      .selectAll()
      .where('expires_at', '<=', sql<Date>`now()`)
      .orderBy('expires_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  }

  // ---- send counters

  /**
   * Takes one of today's sends for a mailbox if fewer than `limit` were taken; false when the limit is
   * reached. One conditional upsert, so concurrent sends can never exceed the limit.
   */
  async reserveSend(mailboxId: string, day: string, limit: number): Promise<boolean> {
    const row = await sql<{ count: number }>`
      INSERT INTO send_counters (mailbox_id, day, count) VALUES (${mailboxId}, ${day}::date, 1)
      ON CONFLICT (mailbox_id, day) DO UPDATE SET count = send_counters.count + 1
        WHERE send_counters.count < ${limit}
      RETURNING count`.execute(this.db);
    return row.rows.length > 0;
  }

  /** Gives back a reserved send (the message was not sent, or its payment did not settle). */
  async releaseSend(mailboxId: string, day: string): Promise<void> {
    await this.db
      .updateTable('send_counters')
      .set({ count: sql<number>`greatest(count - 1, 0)` })
      .where('mailbox_id', '=', mailboxId)
      .where('day', '=', day)
      .execute();
  }

  async sendsToday(mailboxId: string, day: string): Promise<number> {
    const row = await this.db
      .selectFrom('send_counters')
      .select('count')
      .where('mailbox_id', '=', mailboxId)
      .where('day', '=', day)
      .executeTakeFirst();
    return row?.count ?? 0;
  }

  // ---- domains

  async insertDomain(d: NewDomain, db: Db = this.db): Promise<DomainRow> {
    return db
      .insertInto('domains')
      .values({
        id: d.id,
        owner: d.owner,
        name: d.name,
        dkim_selector: d.dkimSelector,
        dkim_public_key: d.dkimPublicKey,
        dkim_private_key: d.dkimPrivateKeySealed,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Inserts a service domain unless one exists (several replicas may start at once); returns the stored row. */
  async ensureServiceDomain(d: NewDomain): Promise<DomainRow> {
    await this.db
      .insertInto('domains')
      .values({
        id: d.id,
        owner: null,
        name: d.name,
        dkim_selector: d.dkimSelector,
        dkim_public_key: d.dkimPublicKey,
        dkim_private_key: d.dkimPrivateKeySealed,
      })
      .onConflict((oc) => oc.column('name').where('owner', 'is', null).doNothing())
      .execute();
    return this.db
      .selectFrom('domains')
      .selectAll()
      .where('name', '=', d.name)
      .where('owner', 'is', null)
      .executeTakeFirstOrThrow();
  }

  serviceDomain(name: string): Promise<DomainRow | undefined> {
    return this.db
      .selectFrom('domains')
      .selectAll()
      .where('name', '=', name)
      .where('owner', 'is', null)
      .executeTakeFirst();
  }

  domainById(id: string): Promise<DomainRow | undefined> {
    return this.db
      .selectFrom('domains')
      .selectAll()
      .where('id', '=', id)
      .where('owner', 'is not', null)
      .executeTakeFirst();
  }

  domainByOwnerAndName(owner: string, name: string): Promise<DomainRow | undefined> {
    return this.db
      .selectFrom('domains')
      .selectAll()
      .where('owner', '=', owner)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  /** The verified custom domain of this name, if any (at most one, by a unique index). */
  verifiedDomain(name: string): Promise<DomainRow | undefined> {
    return this.db
      .selectFrom('domains')
      .selectAll()
      .where('name', '=', name)
      .where('owner', 'is not', null)
      .where('verified_at', 'is not', null)
      .executeTakeFirst();
  }

  async recordDomainCheck(id: string, check: unknown, verified: boolean): Promise<DomainRow> {
    return this.db
      .updateTable('domains')
      .set({
        last_checked_at: sql<Date>`now()`,
        last_check: JSON.stringify(check),
        ...(verified ? { verified_at: sql<Date>`coalesce(verified_at, now())` } : {}),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async deleteDomain(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('domains').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}
