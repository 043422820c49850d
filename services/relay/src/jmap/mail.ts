import { randomUUID } from 'node:crypto';
import { decodeCursor, encodeCursor, invalidRequest, type Page } from '@agentstack/core';
import type { Email, EmailAddress, EmailBodyPart, Identity, Mailbox } from 'jmap-rfc-types';
import { z } from 'zod';
import type {
  Address,
  AttachmentContent,
  AuthResults,
  MessageDetail,
  MessageQuery,
  MessageSummary,
  OutgoingMessage,
  SendResult,
} from '../backend.js';
import { CORE, type JmapClient, JmapError, MAIL, SUBMISSION, unwrap } from './client.js';

const USING = [CORE, MAIL];
const cursorShape = z.object({ a: z.string() });

const SUMMARY_PROPERTIES = [
  'id',
  'from',
  'to',
  'subject',
  'receivedAt',
  'size',
  'keywords',
  'hasAttachment',
  'preview',
];
const DETAIL_PROPERTIES = [
  ...SUMMARY_PROPERTIES,
  'messageId',
  'cc',
  'replyTo',
  'sentAt',
  'headers',
  'textBody',
  'htmlBody',
  'attachments',
  'bodyValues',
];

type JmapEmail = Partial<Email> & { id: string };

const toAddress = (a: EmailAddress): Address => ({ address: a.email, name: a.name ?? '' });
const toAddresses = (list: EmailAddress[] | null | undefined): Address[] => (list ?? []).map(toAddress);
const unread = (email: JmapEmail) => !(email.keywords as Record<string, boolean> | undefined)?.$seen;

/** Reads SPF/DKIM/DMARC verdicts from the Authentication-Results header the receiving server added. */
export function authResultsFromHeaders(headers: [string, string][]): AuthResults {
  const value = headers
    .filter(([name]) => name.toLowerCase() === 'authentication-results')
    .map(([, v]) => v)
    .join('; ');
  const verdict = (method: string) =>
    new RegExp(`\\b${method}=([a-z]+)`, 'i').exec(value)?.[1]?.toLowerCase() ?? 'none';
  const dkimDomains = [...value.matchAll(/\bdkim=pass\b[^;]*?header\.d=([^\s;]+)/gi)].map((m) =>
    (m[1] as string).toLowerCase(),
  );
  return { spf: verdict('spf'), dkim: verdict('dkim'), dmarc: verdict('dmarc'), dkimDomains };
}

function summary(email: JmapEmail): MessageSummary {
  return {
    id: email.id,
    from: email.from?.[0] ? toAddress(email.from[0]) : null,
    to: toAddresses(email.to),
    subject: email.subject ?? '',
    receivedAt: new Date(email.receivedAt ?? 0).toISOString(),
    size: email.size ?? 0,
    unread: unread(email),
    hasAttachments: Boolean(email.hasAttachment),
    preview: (email.preview ?? '').slice(0, 200),
  };
}

const bodyText = (
  parts: EmailBodyPart[] | undefined,
  type: string,
  values: Record<string, { value: string }> | undefined,
) => {
  const texts = (parts ?? [])
    .filter((p) => p.type === type && p.partId && values?.[p.partId])
    .map((p) => values?.[p.partId as string]?.value ?? '');
  return texts.length ? texts.join('\n') : null;
};

/** A JMAP refusal of a send that is the caller's fault (bad recipient, forbidden sender). */
export class JmapSendRefused extends Error {
  constructor(
    message: string,
    readonly type: string,
  ) {
    super(message);
  }
}

/**
 * Mail operations of one mailbox over standard JMAP (RFC 8621: Email/query, Email/get, Email/set,
 * EmailSubmission/set, blob upload/download). Works against any JMAP server; tested against Cyrus.
 */
export class JmapMail {
  private sentMailbox: Promise<string> | undefined;

  constructor(private readonly client: JmapClient) {}

  async list(query: MessageQuery): Promise<Page<MessageSummary>> {
    const accountId = await this.client.accountId();
    const filter: Record<string, unknown> = {};
    if (query.unread === true) filter.notKeyword = '$seen';
    if (query.unread === false) filter.hasKeyword = '$seen';
    if (query.from) filter.from = query.from;
    const after = decodeCursor(query.cursor, cursorShape);
    const responses = await this.client.request(USING, [
      [
        'Email/query',
        {
          accountId,
          filter,
          sort: [{ property: 'receivedAt', isAscending: false }],
          limit: query.limit + 1,
          ...(after ? { anchor: after.a, anchorOffset: 1 } : {}),
        },
        'q',
      ],
      [
        'Email/get',
        { accountId, '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: SUMMARY_PROPERTIES },
        'g',
      ],
    ] as never);
    let ids: string[];
    try {
      ids = unwrap<{ ids: string[] }>(responses[0], 'Email/query').ids;
    } catch (err) {
      if (err instanceof JmapError && err.type === 'anchorNotFound') {
        throw invalidRequest('cursor is not one this API returned (the message it pointed at is gone)', 'query.cursor');
      }
      throw err;
    }
    const list = unwrap<{ list: JmapEmail[] }>(responses[1], 'Email/get').list;
    const byId = new Map(list.map((e) => [e.id, e]));
    const emails = ids.flatMap((id) => (byId.has(id) ? [byId.get(id) as JmapEmail] : []));
    const hasMore = emails.length > query.limit;
    const page = hasMore ? emails.slice(0, query.limit) : emails;
    const last = page.at(-1);
    return { items: page.map(summary), nextCursor: hasMore && last ? encodeCursor({ a: last.id }) : null };
  }

  async get(id: string, { markRead }: { markRead: boolean }): Promise<MessageDetail | undefined> {
    const accountId = await this.client.accountId();
    const { list } = await this.client.call<{ list: JmapEmail[] }>(USING, 'Email/get', {
      accountId,
      ids: [id],
      properties: DETAIL_PROPERTIES,
      fetchTextBodyValues: true,
      fetchHTMLBodyValues: true,
    });
    const email = list[0];
    if (!email) return undefined;
    if (markRead && unread(email)) {
      await this.client.call(USING, 'Email/set', { accountId, update: { [id]: { 'keywords/$seen': true } } });
    }
    const headers = (email.headers ?? []).map((h) => [h.name, h.value.trim()] as [string, string]);
    const values = email.bodyValues as Record<string, { value: string }> | undefined;
    return {
      ...summary(email),
      messageIdHeader: email.messageId?.[0] ? `<${email.messageId[0]}>` : null,
      cc: toAddresses(email.cc),
      replyTo: toAddresses(email.replyTo),
      sentAt: email.sentAt ? new Date(email.sentAt).toISOString() : null,
      headers,
      text: bodyText(email.textBody, 'text/plain', values),
      html: bodyText(email.htmlBody, 'text/html', values),
      attachments: (email.attachments ?? []).map((a) => ({
        id: a.blobId as string,
        filename: a.name ?? null,
        contentType: a.type ?? 'application/octet-stream',
        size: a.size ?? 0,
        disposition: a.disposition ?? null,
        contentId: a.cid ?? null,
      })),
      auth: authResultsFromHeaders(headers),
    };
  }

  /** Downloads an attachment, but only one that belongs to this message (blob ids are account-wide). */
  async attachment(messageId: string, blobId: string): Promise<AttachmentContent | undefined> {
    const accountId = await this.client.accountId();
    const { list } = await this.client.call<{ list: JmapEmail[] }>(USING, 'Email/get', {
      accountId,
      ids: [messageId],
      properties: ['attachments'],
    });
    const part = list[0]?.attachments?.find((a) => a.blobId === blobId);
    if (!part) return undefined;
    const type = part.type ?? 'application/octet-stream';
    const content = await this.client.download(accountId, blobId, part.name ?? 'attachment', type);
    return { filename: part.name ?? null, contentType: type, content };
  }

  async delete(id: string): Promise<boolean> {
    const accountId = await this.client.accountId();
    // Some servers (Cyrus) report an already-expunged id as destroyed again; look first, so a repeat is a 404.
    const { list } = await this.client.call<{ list: { id: string }[] }>(USING, 'Email/get', {
      accountId,
      ids: [id],
      properties: ['id'],
    });
    if (list.length === 0) return false;
    const result = await this.client.call<{ destroyed?: string[] | null }>(USING, 'Email/set', {
      accountId,
      destroy: [id],
    });
    return (result.destroyed ?? []).includes(id);
  }

  async count(): Promise<{ total: number; unread: number }> {
    const accountId = await this.client.accountId();
    const [all, fresh] = await this.client.request(USING, [
      ['Email/query', { accountId, calculateTotal: true, limit: 1 }, 'a'],
      ['Email/query', { accountId, filter: { notKeyword: '$seen' }, calculateTotal: true, limit: 1 }, 'u'],
    ] as never);
    return {
      total: unwrap<{ total: number }>(all, 'Email/query').total ?? 0,
      unread: unwrap<{ total: number }>(fresh, 'Email/query').total ?? 0,
    };
  }

  /** Stores an RFC 5322 message in the inbox (Email/import); returns its id. */
  async importMessage(raw: Buffer): Promise<string> {
    const accountId = await this.client.accountId();
    const inbox = await this.mailboxWithRole('inbox');
    if (!inbox) throw new JmapError('the account has no inbox', 'notFound');
    const blob = await this.client.upload(accountId, raw, 'message/rfc822');
    const result = await this.client.call<{
      created?: Record<string, { id: string }>;
      notCreated?: Record<string, unknown>;
    }>(USING, 'Email/import', {
      accountId,
      emails: { m: { blobId: blob.blobId, mailboxIds: { [inbox]: true }, keywords: {} } },
    });
    const created = result.created?.m;
    if (!created)
      throw new JmapError(`Email/import refused the message: ${JSON.stringify(result.notCreated?.m)}`, 'notCreated');
    return created.id;
  }

  /** Composes the message in the Sent mailbox and submits it (EmailSubmission/set) in one request. */
  async send(message: OutgoingMessage): Promise<SendResult> {
    const accountId = await this.client.accountId();
    const [sentId, identities] = await Promise.all([this.sentMailboxId(), this.identities(accountId)]);
    const identity =
      identities.find((i) => i.email.toLowerCase() === message.from.address.toLowerCase()) ?? identities[0];
    if (!identity) throw new JmapSendRefused('the account has no sending identity', 'forbiddenFrom');
    const attachments = await Promise.all(
      message.attachments.map(async (a) => {
        const blob = await this.client.upload(accountId, a.content, a.contentType);
        return { blobId: blob.blobId, type: a.contentType, name: a.filename, disposition: 'attachment' };
      }),
    );
    const domain = message.from.address.slice(message.from.address.lastIndexOf('@') + 1);
    const messageId = `${randomUUID()}@${domain}`;
    const bodyValues: Record<string, { value: string }> = {};
    if (message.text !== undefined) bodyValues.t = { value: message.text };
    if (message.html !== undefined) bodyValues.h = { value: message.html };
    const email: Record<string, unknown> = {
      mailboxIds: { [sentId]: true },
      keywords: { $seen: true },
      messageId: [messageId],
      from: [{ name: message.from.name || null, email: message.from.address }],
      to: message.to.map((email) => ({ email })),
      subject: message.subject,
      bodyValues,
      ...(message.cc.length ? { cc: message.cc.map((email) => ({ email })) } : {}),
      ...(message.replyTo ? { replyTo: [{ email: message.replyTo }] } : {}),
      ...(message.inReplyTo
        ? {
            inReplyTo: [message.inReplyTo.replace(/^<|>$/g, '')],
            references: [message.inReplyTo.replace(/^<|>$/g, '')],
          }
        : {}),
      ...(message.text !== undefined ? { textBody: [{ partId: 't', type: 'text/plain' }] } : {}),
      ...(message.html !== undefined ? { htmlBody: [{ partId: 'h', type: 'text/html' }] } : {}),
      ...(attachments.length ? { attachments } : {}),
    };
    const recipients = [...message.to, ...message.cc];
    const responses = await this.client.request([CORE, MAIL, SUBMISSION], [
      ['Email/set', { accountId, create: { m: email } }, 'e'],
      [
        'EmailSubmission/set',
        {
          accountId,
          create: {
            s: {
              identityId: identity.id,
              emailId: '#m',
              envelope: {
                mailFrom: { email: message.from.address, parameters: null },
                rcptTo: recipients.map((email) => ({ email, parameters: null })),
              },
            },
          },
        },
        's',
      ],
    ] as never);
    const set = unwrap<{ created?: Record<string, { id: string }> | null; notCreated?: Record<string, SetErr> | null }>(
      responses[0],
      'Email/set',
    );
    const created = set.created?.m;
    if (!created) {
      const problem = set.notCreated?.m;
      throw new JmapSendRefused(
        `the message was refused: ${problem?.type ?? 'unknown'} ${problem?.description ?? ''}`,
        problem?.type ?? 'invalidProperties',
      );
    }
    const submission = unwrap<{ created?: Record<string, unknown> | null; notCreated?: Record<string, SetErr> | null }>(
      responses[1],
      'EmailSubmission/set',
    );
    if (!submission.created?.s) {
      const problem = submission.notCreated?.s;
      // Leave no unsent copy in Sent.
      await this.client.call(USING, 'Email/set', { accountId, destroy: [created.id] }).catch(() => {});
      throw new JmapSendRefused(
        `the server refused to send: ${problem?.type ?? 'unknown'}${problem?.description ? ` (${problem.description})` : ''}`,
        problem?.type ?? 'serverFail',
      );
    }
    return { messageId: `<${messageId}>`, accepted: recipients, rejected: [] };
  }

  private async identities(accountId: string): Promise<Identity[]> {
    const { list } = await this.client.call<{ list: Identity[] }>([CORE, MAIL, SUBMISSION], 'Identity/get', {
      accountId,
    });
    return list;
  }

  private async mailboxWithRole(role: string): Promise<string | undefined> {
    const accountId = await this.client.accountId();
    const { list } = await this.client.call<{ list: Mailbox[] }>(USING, 'Mailbox/get', {
      accountId,
      properties: ['id', 'name', 'role'],
    });
    return (list.find((m) => m.role === role) ?? list.find((m) => m.name.toLowerCase() === role))?.id;
  }

  /** The mailbox sent mail is kept in: role `sent`, else one named Sent, else created. */
  private sentMailboxId(): Promise<string> {
    if (!this.sentMailbox) {
      this.sentMailbox = (async () => {
        const existing = await this.mailboxWithRole('sent');
        if (existing) return existing;
        const accountId = await this.client.accountId();
        const result = await this.client.call<{ created?: Record<string, { id: string }> }>(USING, 'Mailbox/set', {
          accountId,
          create: { s: { name: 'Sent', role: 'sent' } },
        });
        const id = result.created?.s?.id;
        if (!id) throw new JmapError('could not create a Sent mailbox', 'notCreated');
        return id;
      })();
      this.sentMailbox.catch(() => {
        this.sentMailbox = undefined;
      });
    }
    return this.sentMailbox;
  }
}

interface SetErr {
  type?: string;
  description?: string;
}
