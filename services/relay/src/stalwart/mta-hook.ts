import { timingSafeEqual } from 'node:crypto';
import { AppError, fromZodError, type Logger, type RouteSpec } from '@agentstack/core';
import type { Kysely } from '@agentstack/db';
import type { Hono } from 'hono';
import { simpleParser } from 'mailparser';
import { z } from 'zod';
import type { Address } from '../backend.js';
import type { RelayDatabase } from '../db.js';
import { authResultsFromHeaders } from '../jmap/mail.js';
import type { RelayStore } from '../store.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';

/**
 * Stalwart's MTA hooks (docs/api/mta-hooks/request.md and response.md): at each configured SMTP stage
 * Stalwart POSTs `{context: {stage, …}, envelope: {from: {address}, to: [{address}]}, message: {headers:
 * [[name, value]], serverHeaders, contents, size}}` and acts on `{action: "accept" | "reject" | "discard" |
 * "quarantine", response?: {status, enhancedStatus, message}}`.
 *
 * relay uses two stages: RCPT (refuse expired or unknown mailboxes on our domains at once) and DATA
 * (announce the message to the mailbox's webhooks). The endpoint is authenticated with a shared secret
 * (HTTP Basic password or Bearer token, as Stalwart's `httpAuth` sends it).
 */
export const mtaHookRequest = z.object({
  context: z.object({ stage: z.string() }).loose(),
  envelope: z
    .object({
      from: z.object({ address: z.string() }).loose().nullish(),
      to: z.array(z.object({ address: z.string() }).loose()).default([]),
    })
    .loose()
    .optional(),
  message: z
    .object({
      headers: z.array(z.tuple([z.string(), z.string()])).default([]),
      serverHeaders: z.array(z.tuple([z.string(), z.string()])).default([]),
      contents: z.string().optional(),
      size: z.number().optional(),
    })
    .loose()
    .nullish(),
});

export type MtaHookRequest = z.infer<typeof mtaHookRequest>;

export const mtaHookResponse = z.object({
  action: z.enum(['accept', 'reject', 'discard', 'quarantine']),
  response: z
    .object({ status: z.number(), enhancedStatus: z.string(), message: z.string(), disconnect: z.boolean() })
    .optional(),
});

function authorized(header: string | undefined, secret: string): boolean {
  if (!header) return false;
  let presented: string | undefined;
  const [scheme, value] = header.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') presented = value;
  if (scheme?.toLowerCase() === 'basic' && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    presented = decoded.slice(decoded.indexOf(':') + 1);
  }
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

const canonical = (address: string) => {
  const lower = address.trim().toLowerCase();
  const at = lower.lastIndexOf('@');
  return { local: lower.slice(0, at).split('+')[0] as string, domain: lower.slice(at + 1) };
};

async function headerFields(headers: [string, string][]) {
  const parsed = await simpleParser(`${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
  const list = (field: typeof parsed.to): Address[] =>
    (field === undefined ? [] : Array.isArray(field) ? field : [field]).flatMap((o) =>
      o.value.flatMap((a) => (a.address ? [{ address: a.address, name: a.name ?? '' }] : [])),
    );
  return {
    from: list(parsed.from)[0] ?? null,
    to: list(parsed.to),
    subject: parsed.subject ?? '',
    messageIdHeader: parsed.messageId ?? null,
    hasAttachments: /multipart\/(mixed|related)/i.test(
      headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '',
    ),
  };
}

export function mountMtaHook(
  app: Hono,
  deps: {
    secret: string;
    store: Pick<RelayStore, 'liveMailboxByAddress'>;
    db: Kysely<RelayDatabase>;
    dispatcher: WebhookDispatcher;
    isOwnDomain: (name: string) => Promise<boolean>;
    log: Logger;
  },
): RouteSpec[] {
  app.post('/v1/hooks/stalwart', async (c) => {
    if (!authorized(c.req.header('authorization'), deps.secret)) {
      throw new AppError('unauthorized', 'MTA hook secret missing or wrong', 401);
    }
    const parsed = mtaHookRequest.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw fromZodError(parsed.error, 'body');
    const hook = parsed.data;
    const stage = hook.context.stage.toUpperCase();
    const recipients = hook.envelope?.to ?? [];

    if (stage === 'RCPT') {
      for (const rcpt of recipients) {
        const { local, domain } = canonical(rcpt.address);
        if (!(await deps.isOwnDomain(domain))) continue;
        if (!(await deps.store.liveMailboxByAddress(`${local}@${domain}`))) {
          return c.json({
            action: 'reject' as const,
            response: {
              status: 550,
              enhancedStatus: '5.1.1',
              message: `<${rcpt.address}>: no such mailbox`,
              disconnect: false,
            },
          });
        }
      }
      return c.json({ action: 'accept' as const });
    }

    if (stage === 'DATA' && hook.message) {
      const headers = hook.message.headers;
      const fields = await headerFields(headers);
      const auth = authResultsFromHeaders([...hook.message.serverHeaders, ...headers]);
      const receivedAt = new Date();
      let queued = 0;
      await deps.db.transaction().execute(async (trx) => {
        for (const rcpt of recipients) {
          const { local, domain } = canonical(rcpt.address);
          const mailbox = await deps.store.liveMailboxByAddress(`${local}@${domain}`);
          if (!mailbox) continue;
          queued += await deps.dispatcher.enqueue(trx, {
            mailboxId: mailbox.id,
            event: 'message.received',
            createdAt: receivedAt,
            data: {
              mailbox: { id: mailbox.id, address: mailbox.address },
              // The JMAP id is assigned on delivery, after this hook; list the mailbox's messages to read it.
              message: {
                id: null,
                ...fields,
                receivedAt: receivedAt.toISOString(),
                size: hook.message?.size ?? 0,
                auth,
              },
            },
          });
        }
      });
      if (queued > 0) deps.dispatcher.notify();
    }
    return c.json({ action: 'accept' as const });
  });
  return [
    {
      method: 'post',
      path: '/v1/hooks/stalwart',
      summary:
        "Stalwart MTA hook (RCPT and DATA stages): refuses unknown mailboxes, announces new mail to the mailbox's webhooks",
      auth: 'the RELAY_MTA_HOOK_SECRET (HTTP Basic password or Bearer token); for the mail server only',
      body: mtaHookRequest,
      response: mtaHookResponse,
      responseStatus: 200,
    },
  ];
}
