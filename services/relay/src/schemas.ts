import { paginationQuery } from '@agentstack/core';
import { z } from 'zod';

/**
 * Request and response shapes of relay.sh. The same schemas validate requests and generate /openapi.json
 * and /llms.txt. Anything that ends up in a mail header refuses line breaks (header injection).
 */

const NO_LINE_BREAKS = /^[^\r\n\0]*$/;
const line = (max: number) =>
  z.string().max(max).regex(NO_LINE_BREAKS, 'must not contain line breaks or NUL characters');
const email = z.email({ message: 'expected an email address like agent@example.com' }).max(254);

export const ids = {
  mailbox: z.string().regex(/^mbx_[0-9A-Za-z]{22}$/, 'expected a mailbox id (mbx_…)'),
  webhook: z.string().regex(/^wh_[0-9A-Za-z]{22}$/, 'expected a webhook id (wh_…)'),
  domain: z.string().regex(/^dom_[0-9A-Za-z]{22}$/, 'expected a domain id (dom_…)'),
  /** Embedded message ids are `msg_…`; JMAP ids are server-chosen (RFC 8620 §1.2 alphabet). */
  message: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, 'expected a message id'),
  attachment: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, 'expected an attachment id'),
};

export const domainName = z
  .string()
  .max(253)
  .transform((s) => s.trim().toLowerCase().replace(/\.$/, ''))
  .pipe(
    z
      .string()
      .regex(
        /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/,
        'expected a domain name like example.com',
      ),
  );

export const mailboxParams = z.object({ id: ids.mailbox });
export const messageParams = z.object({ id: ids.mailbox, msg: ids.message });
export const attachmentParams = z.object({ id: ids.mailbox, msg: ids.message, att: ids.attachment });
export const webhookParams = z.object({ id: ids.mailbox, wh: ids.webhook });
export const domainParams = z.object({ id: ids.domain });

const TTL_PATTERN = /^(\d{1,6})(m|h|d)$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function createMailboxBody(maxTtlDays: number) {
  const maxMs = maxTtlDays * UNIT_MS.d;
  return z.object({
    domain: domainName.optional().describe('a service domain (default: the first) or one of your verified domains'),
    ttl: z
      .union([
        z.number().int().describe('seconds'),
        z.string().regex(TTL_PATTERN, 'expected seconds, or a number with m, h or d (e.g. "36h", "7d")'),
      ])
      .optional()
      .describe(
        `time to live: seconds or "30m" / "36h" / "7d"; default 24 h, at least 10 minutes, at most ${maxTtlDays} days`,
      )
      .transform((ttl, ctx) => {
        if (ttl === undefined) return undefined;
        let ms: number;
        if (typeof ttl === 'number') ms = ttl * 1000;
        else {
          const [, amount, unit] = TTL_PATTERN.exec(ttl) as RegExpExecArray;
          ms = Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
        }
        if (ms < 10 * 60_000 || ms > maxMs) {
          ctx.addIssue({ code: 'custom', message: `ttl must be between 10 minutes and ${maxTtlDays} days` });
          return z.NEVER;
        }
        return ms;
      }),
  });
}

export function renewBody(maxTtlDays: number) {
  return z.object({ days: z.number().int().min(1).max(maxTtlDays).describe('whole days to add to the expiry') });
}

const base64 = z
  .string()
  .transform((s) => s.replace(/\s+/g, ''))
  .pipe(z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64'))
  .transform((s) => Buffer.from(s, 'base64'));

export const sendBody = z
  .object({
    to: z.union([email, z.array(email).min(1).max(100)]).transform((v) => (Array.isArray(v) ? v : [v])),
    cc: z.array(email).max(100).default([]),
    subject: line(998),
    text: z.string().optional(),
    html: z.string().optional(),
    replyTo: email.optional(),
    inReplyTo: line(998)
      .regex(/^<[^<>\s]+>$/, 'expected a Message-ID like <id@example.com>')
      .optional(),
    fromName: line(100).optional().describe('display name shown with your mailbox address'),
    attachments: z
      .array(
        z.object({
          filename: line(255).regex(/^[^/\\]+$/, 'must be a file name without a path'),
          contentType: z
            .string()
            .max(255)
            .regex(/^[\w.+-]+\/[\w.+-]+$/, 'expected a MIME type like application/pdf')
            .default('application/octet-stream'),
          content: base64.describe('the file, base64-encoded'),
        }),
      )
      .max(20)
      .default([]),
  })
  .refine((b) => b.text !== undefined || b.html !== undefined, { message: 'give text, html or both', path: ['text'] });

export const webhookBody = z.object({
  url: z.string().max(2048).describe('https URL receiving POSTs'),
  secret: z.string().min(16).max(256).describe('shared secret for the HMAC-SHA256 signature (X-Signature)'),
});

export const domainBody = z.object({ domain: domainName });

export const messagesQuery = paginationQuery.extend({
  unread: z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true')),
  from: z
    .string()
    .max(254)
    .regex(/^([^@\s]+@[^@\s]+|@[^@\s]+)$/, 'expected an address or @domain')
    .optional(),
});

export const deliveriesQuery = paginationQuery.extend({ webhook: ids.webhook.optional() });

// ---- responses (documentation)

const address = z.object({ address: z.string(), name: z.string() });
const authResults = z.object({
  spf: z.string(),
  dkim: z.string(),
  dmarc: z.string(),
  dkimDomains: z.array(z.string()).optional(),
});

export const mailboxResponse = z.object({
  id: z.string(),
  address: z.string(),
  domain: z.string(),
  expiresAt: z.string(),
  createdAt: z.string(),
});

export const webhookResponse = z.object({
  id: z.string(),
  url: z.string(),
  status: z.enum(['active', 'disabled']),
  consecutiveFailures: z.number(),
  disabledReason: z.string().nullable(),
  disabledAt: z.string().nullable(),
  lastSuccessAt: z.string().nullable(),
  lastFailureAt: z.string().nullable(),
  createdAt: z.string(),
});

export const mailboxDetailsResponse = mailboxResponse.extend({
  messages: z.object({ total: z.number(), unread: z.number() }),
  sending: z.object({ today: z.number(), dailyLimit: z.number() }),
  webhooks: z.array(webhookResponse),
});

const page = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });

export const mailboxListResponse = page(mailboxResponse);

export const messageSummaryResponse = z.object({
  id: z.string(),
  from: address.nullable(),
  to: z.array(address),
  subject: z.string(),
  receivedAt: z.string(),
  size: z.number(),
  unread: z.boolean(),
  hasAttachments: z.boolean(),
  preview: z.string(),
});

export const messageListResponse = page(messageSummaryResponse);

export const messageDetailResponse = messageSummaryResponse.extend({
  messageIdHeader: z.string().nullable(),
  cc: z.array(address),
  replyTo: z.array(address),
  sentAt: z.string().nullable(),
  headers: z.array(z.tuple([z.string(), z.string()])),
  text: z.string().nullable(),
  html: z.string().nullable(),
  attachments: z.array(
    z.object({
      id: z.string(),
      filename: z.string().nullable(),
      contentType: z.string(),
      size: z.number(),
      disposition: z.string().nullable(),
      contentId: z.string().nullable(),
      url: z.string(),
    }),
  ),
  auth: authResults,
});

export const sendResponse = z.object({
  messageId: z.string(),
  from: z.string(),
  accepted: z.array(z.string()),
  rejected: z.array(z.string()),
  sentToday: z.number(),
  dailyLimit: z.number(),
});

export const deliveryResponse = z.object({
  id: z.string(),
  webhookId: z.string(),
  event: z.string(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number(),
  nextAttemptAt: z.string().nullable(),
  lastAttemptAt: z.string().nullable(),
  lastStatusCode: z.number().nullable(),
  lastError: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  createdAt: z.string(),
});

export const deliveryListResponse = page(deliveryResponse);

const dnsRecord = z.object({
  purpose: z.enum(['mx', 'spf', 'dkim', 'dmarc']),
  type: z.enum(['MX', 'TXT']),
  name: z.string(),
  value: z.string(),
  priority: z.number().optional(),
  required: z.boolean(),
  state: z.enum(['verified', 'missing', 'mismatch', 'error']).optional(),
  found: z.array(z.string()).optional(),
  detail: z.string().optional(),
});

export const domainResponse = z.object({
  id: z.string(),
  domain: z.string(),
  status: z.enum(['pending', 'verified']),
  records: z.array(dnsRecord),
  createdAt: z.string(),
  verifiedAt: z.string().nullable(),
  lastCheckedAt: z.string().nullable(),
});

export const deletedResponse = z.object({ id: z.string(), deleted: z.literal(true) });

export const healthResponse = z.object({
  status: z.literal('ok'),
  service: z.literal('relay'),
  backend: z.enum(['embedded', 'stalwart']),
  domains: z.array(z.string()),
  smtp: z.object({ port: z.number() }).nullable(),
});
