import type { Logger } from '@agentstack/core';
import { type Kysely, sql } from '@agentstack/db';
import { authenticate } from 'mailauth';
import { type AddressObject, simpleParser } from 'mailparser';
import type { Address, AuthResults } from '../backend.js';
import type { RelayDatabase } from '../db.js';
import { type DnsLookup, mailauthResolver } from '../dns.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';
import type { MessageStore, NewMessage } from './message-store.js';

export interface IncomingEnvelope {
  mailFrom: string | null;
  /** The mailboxes accepted at RCPT TO, with the address as the sender wrote it. */
  recipients: { mailboxId: string; address: string }[];
  clientIp: string;
  helo: string;
}

export interface IngestResult {
  messageIds: string[];
}

/** Thrown when a recipient vanished (deleted, expired) between RCPT TO and the end of DATA: a 4xx, retry. */
export class RecipientGone extends Error {}

/**
 * The embedded backend's receiving path after SMTP: check SPF/DKIM/DMARC (mailauth, with our resolver),
 * parse (mailparser), then store a copy per recipient mailbox with its attachments and queue its webhooks,
 * all in one transaction. The SMTP server answers 250 only after this resolves, i.e. after the commit.
 */
export class Ingest {
  constructor(
    private readonly deps: {
      db: Kysely<RelayDatabase>;
      messages: MessageStore;
      webhooks: WebhookDispatcher;
      dns: DnsLookup;
      hostname: string;
      log: Logger;
    },
  ) {}

  async ingest(raw: Buffer, envelope: IncomingEnvelope): Promise<IngestResult> {
    const [auth, parsed] = await Promise.all([
      this.authenticate(raw, envelope),
      simpleParser(raw, { skipImageLinks: true }),
    ]);
    const base: Omit<NewMessage, 'mailboxId' | 'envelopeTo'> = {
      messageIdHeader: parsed.messageId ?? null,
      from: firstAddress(parsed.from),
      to: addresses(parsed.to),
      cc: addresses(parsed.cc),
      replyTo: addresses(parsed.replyTo),
      subject: parsed.subject ?? null,
      sentAt: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date : null,
      envelopeFrom: envelope.mailFrom,
      headers: parsed.headerLines.map(({ line }) => {
        const colon = line.indexOf(':');
        return [
          line.slice(0, colon).trim(),
          line
            .slice(colon + 1)
            .replace(/\r?\n[ \t]+/g, ' ')
            .trim(),
        ];
      }),
      text: parsed.text ?? null,
      html: parsed.html === false ? null : parsed.html,
      size: raw.length,
      auth,
      attachments: parsed.attachments.map((a) => ({
        filename: a.filename ?? null,
        contentType: a.contentType,
        disposition: a.contentDisposition ?? null,
        contentId: a.cid ?? null,
        content: a.content,
      })),
    };
    const receivedAt = new Date();
    const messageIds = await this.deps.db.transaction().execute(async (trx) => {
      const ids: string[] = [];
      for (const recipient of envelope.recipients) {
        // The mailbox may have expired or been deleted since RCPT TO; then nothing is stored and the sender
        // gets a temporary failure, retries, and is refused at RCPT TO.
        const live = await sql<{ id: string; address: string }>`
          SELECT id, address FROM mailboxes WHERE id = ${recipient.mailboxId} AND expires_at > now() FOR SHARE`.execute(
          trx,
        );
        const mailbox = live.rows[0];
        if (!mailbox) throw new RecipientGone(`${recipient.address} is no longer a live mailbox`);
        const id = await this.deps.messages.insert(trx, {
          ...base,
          mailboxId: mailbox.id,
          envelopeTo: recipient.address,
        });
        ids.push(id);
        await this.deps.webhooks.enqueue(trx, {
          mailboxId: mailbox.id,
          event: 'message.received',
          createdAt: receivedAt,
          data: {
            mailbox: { id: mailbox.id, address: mailbox.address },
            message: {
              id,
              messageIdHeader: base.messageIdHeader,
              from: base.from,
              to: base.to,
              subject: base.subject ?? '',
              receivedAt: receivedAt.toISOString(),
              size: base.size,
              hasAttachments: base.attachments.length > 0,
              auth,
            },
          },
        });
      }
      return ids;
    });
    this.deps.webhooks.notify();
    return { messageIds };
  }

  private async authenticate(raw: Buffer, envelope: IncomingEnvelope): Promise<AuthResults> {
    try {
      const result = await authenticate(raw, {
        ip: envelope.clientIp,
        helo: envelope.helo,
        sender: envelope.mailFrom ?? '',
        mta: this.deps.hostname,
        resolver: mailauthResolver(this.deps.dns),
        disableArc: true,
        disableBimi: true,
      });
      const dkimResults = result.dkim?.results ?? [];
      const passed = dkimResults.filter((r) => r.status?.result === 'pass');
      return {
        spf: result.spf ? result.spf.status.result : 'none',
        dkim: passed.length > 0 ? 'pass' : (dkimResults[0]?.status?.result ?? 'none'),
        dmarc: result.dmarc ? result.dmarc.status.result : 'none',
        dkimDomains: passed.map((r) => r.signingDomain),
      };
    } catch (err) {
      // Authentication results are information for the reader, never a reason to lose a message.
      this.deps.log.warn({ err }, 'mail authentication checks failed');
      return { spf: 'temperror', dkim: 'temperror', dmarc: 'temperror', dkimDomains: [] };
    }
  }
}

function addresses(field: AddressObject | AddressObject[] | undefined): Address[] {
  const objects = field === undefined ? [] : Array.isArray(field) ? field : [field];
  const out: Address[] = [];
  for (const object of objects) {
    for (const entry of object.value) {
      if (entry.group) {
        for (const member of entry.group) {
          if (member.address) out.push({ address: member.address, name: member.name ?? '' });
        }
      } else if (entry.address) out.push({ address: entry.address, name: entry.name ?? '' });
    }
  }
  return out;
}

const firstAddress = (field: AddressObject | undefined): Address | null => addresses(field)[0] ?? null;
