import { createHash } from 'node:crypto';
import { decodeCursor, newId, type Page, toPage } from '@agentstack/core';
import { type Kysely, sql, type Transaction } from '@agentstack/db';
import { z } from 'zod';
import type {
  Address,
  AttachmentContent,
  AuthResults,
  MessageDetail,
  MessageQuery,
  MessageSummary,
} from '../backend.js';
import type { AddressJson, RelayDatabase } from '../db.js';

export interface NewMessage {
  mailboxId: string;
  messageIdHeader: string | null;
  from: Address | null;
  to: Address[];
  cc: Address[];
  replyTo: Address[];
  subject: string | null;
  sentAt: Date | null;
  envelopeFrom: string | null;
  envelopeTo: string;
  headers: [string, string][];
  text: string | null;
  html: string | null;
  size: number;
  auth: AuthResults;
  attachments: {
    filename: string | null;
    contentType: string;
    disposition: string | null;
    contentId: string | null;
    content: Buffer;
  }[];
}

const cursorShape = z.object({ r: z.string(), i: z.string() });

const PREVIEW_CHARS = 200;
const preview = (text: string | null) => (text ?? '').replace(/\s+/g, ' ').trim().slice(0, PREVIEW_CHARS);

const toAddresses = (list: AddressJson[] | null | undefined): Address[] =>
  (list ?? []).map((a) => ({ address: a.address, name: a.name }));

/** Messages of the embedded backend: one row each, attachments beside them, all written in one transaction. */
export class MessageStore {
  constructor(private readonly db: Kysely<RelayDatabase>) {}

  /** Inserts a message and its attachments using the caller's transaction; returns the new id. */
  async insert(trx: Transaction<RelayDatabase>, m: NewMessage): Promise<string> {
    const id = newId('msg');
    await trx
      .insertInto('messages')
      .values({
        id,
        mailbox_id: m.mailboxId,
        message_id_header: m.messageIdHeader,
        from_address: m.from?.address ?? null,
        from_name: m.from?.name ?? null,
        to_addresses: JSON.stringify(m.to),
        cc_addresses: JSON.stringify(m.cc),
        reply_to: JSON.stringify(m.replyTo),
        subject: m.subject,
        sent_at: m.sentAt,
        envelope_from: m.envelopeFrom,
        envelope_to: m.envelopeTo,
        headers: JSON.stringify(m.headers),
        text_body: m.text,
        html_body: m.html,
        size_bytes: m.size,
        auth_results: JSON.stringify(m.auth),
      })
      .execute();
    if (m.attachments.length > 0) {
      await trx
        .insertInto('attachments')
        .values(
          m.attachments.map((a, position) => ({
            id: newId('att'),
            message_id: id,
            position,
            filename: a.filename,
            content_type: a.contentType,
            disposition: a.disposition,
            content_id: a.contentId,
            size_bytes: a.content.length,
            sha256: createHash('sha256').update(a.content).digest('hex'),
            content: a.content,
          })),
        )
        .execute();
    }
    return id;
  }

  async list(mailboxId: string, query: MessageQuery): Promise<Page<MessageSummary>> {
    const after = decodeCursor(query.cursor, cursorShape);
    let q = this.db
      .selectFrom('messages as m')
      .select([
        'm.id',
        'm.from_address',
        'm.from_name',
        'm.to_addresses',
        'm.subject',
        'm.received_at',
        'm.size_bytes',
        'm.read_at',
        sql<string | null>`left(m.text_body, 1000)`.as('text_start'),
        sql<boolean>`exists (select 1 from attachments a where a.message_id = m.id)`.as('has_attachments'),
      ])
      .where('m.mailbox_id', '=', mailboxId);
    if (query.unread === true) q = q.where('m.read_at', 'is', null);
    if (query.unread === false) q = q.where('m.read_at', 'is not', null);
    if (query.from) {
      const from = query.from.toLowerCase();
      q = from.startsWith('@')
        ? q.where(sql<boolean>`lower(m.from_address) like ${`%${from.replace(/[\\%_]/g, '\\$&')}`}`)
        : q.where(sql<string>`lower(m.from_address)`, '=', from);
    }
    if (after) q = q.where(sql<boolean>`(m.received_at, m.id) < (${after.r}::timestamptz, ${after.i})`);
    const rows = await q
      .orderBy('m.received_at', 'desc')
      .orderBy('m.id', 'desc')
      .limit(query.limit + 1)
      .execute();
    return toPage(
      rows,
      query.limit,
      (r) => ({
        id: r.id,
        from: r.from_address ? { address: r.from_address, name: r.from_name ?? '' } : null,
        to: toAddresses(r.to_addresses as unknown as AddressJson[]),
        subject: r.subject ?? '',
        receivedAt: (r.received_at as Date).toISOString(),
        size: r.size_bytes,
        unread: r.read_at === null,
        hasAttachments: r.has_attachments,
        preview: preview(r.text_start),
      }),
      (r) => ({ r: (r.received_at as Date).toISOString(), i: r.id }),
    );
  }

  async get(mailboxId: string, id: string, { markRead }: { markRead: boolean }): Promise<MessageDetail | undefined> {
    const row = await this.db
      .selectFrom('messages')
      .selectAll()
      .where('id', '=', id)
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirst();
    if (!row) return undefined;
    const attachments = await this.db
      .selectFrom('attachments')
      .select(['id', 'filename', 'content_type', 'size_bytes', 'disposition', 'content_id'])
      .where('message_id', '=', id)
      .orderBy('position')
      .execute();
    if (markRead && row.read_at === null) {
      await this.db
        .updateTable('messages')
        .set({ read_at: sql<Date>`now()` })
        .where('id', '=', id)
        .where('read_at', 'is', null)
        .execute();
    }
    return {
      id: row.id,
      messageIdHeader: row.message_id_header,
      from: row.from_address ? { address: row.from_address, name: row.from_name ?? '' } : null,
      to: toAddresses(row.to_addresses as unknown as AddressJson[]),
      cc: toAddresses(row.cc_addresses as unknown as AddressJson[]),
      replyTo: toAddresses(row.reply_to as unknown as AddressJson[]),
      subject: row.subject ?? '',
      sentAt: row.sent_at ? row.sent_at.toISOString() : null,
      receivedAt: (row.received_at as Date).toISOString(),
      size: row.size_bytes,
      unread: row.read_at === null,
      hasAttachments: attachments.length > 0,
      preview: preview(row.text_body),
      headers: row.headers as unknown as [string, string][],
      text: row.text_body,
      html: row.html_body,
      attachments: attachments.map((a) => ({
        id: a.id,
        filename: a.filename,
        contentType: a.content_type,
        size: a.size_bytes,
        disposition: a.disposition,
        contentId: a.content_id,
      })),
      auth: row.auth_results as unknown as AuthResults,
    };
  }

  async attachment(mailboxId: string, messageId: string, attachmentId: string): Promise<AttachmentContent | undefined> {
    const row = await this.db
      .selectFrom('attachments as a')
      .innerJoin('messages as m', 'm.id', 'a.message_id')
      .select(['a.filename', 'a.content_type', 'a.content'])
      .where('a.id', '=', attachmentId)
      .where('a.message_id', '=', messageId)
      .where('m.mailbox_id', '=', mailboxId)
      .executeTakeFirst();
    return row ? { filename: row.filename, contentType: row.content_type, content: row.content } : undefined;
  }

  async delete(mailboxId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('messages')
      .where('id', '=', id)
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async count(mailboxId: string): Promise<{ total: number; unread: number }> {
    const row = await this.db
      .selectFrom('messages')
      .select([sql<string>`count(*)`.as('total'), sql<string>`count(*) filter (where read_at is null)`.as('unread')])
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirstOrThrow();
    return { total: Number(row.total), unread: Number(row.unread) };
  }
}
