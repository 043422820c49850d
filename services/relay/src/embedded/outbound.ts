import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { Address, OutgoingMessage, SendResult } from '../backend.js';
import { BackendUnavailable } from '../backend.js';
import type { DkimKey } from '../dkim.js';

export interface OutboundOptions {
  /** The SMTP relay for external recipients (`smtp://` or `smtps://` URL); without it only our own domains are reachable. */
  relayUrl?: string | undefined;
  /** Our own SMTP server, where mail to our own domains is handed (so it is received, checked and announced as any other). */
  local: () => { host: string; port: number };
  /** Whether a domain is one this service receives mail for. */
  isOwnDomain(domain: string): Promise<boolean>;
  hostname: string;
}

type Transport = ReturnType<typeof nodemailer.createTransport>;

const domainOf = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();
const format = (a: Address) => (a.name ? { name: a.name, address: a.address } : a.address);

/** Thrown before anything is sent when some recipients cannot be reached (no relay configured). */
export class UnroutableRecipients extends Error {
  constructor(readonly recipients: string[]) {
    super(`no outbound relay is configured for ${recipients.join(', ')} (set RELAY_OUTBOUND_SMTP_URL)`);
  }
}

/**
 * Sends composed, DKIM-signed mail: recipients on our own domains go straight to our SMTP server, the rest
 * through the configured relay. Both get the same message (same Message-ID); only the envelopes differ.
 */
export class Outbound {
  private relay: Transport | undefined;
  private localTransport: Transport | undefined;

  constructor(private readonly options: OutboundOptions) {
    if (options.relayUrl) this.relay = nodemailer.createTransport(options.relayUrl);
  }

  /** Created on first use: our SMTP port is only known once the server listens. */
  private get local(): Transport {
    if (!this.localTransport) {
      const { host, port } = this.options.local();
      this.localTransport = nodemailer.createTransport({
        host,
        port,
        secure: false,
        ignoreTLS: true,
        name: this.options.hostname,
        pool: true,
        maxConnections: 4,
      });
    }
    return this.localTransport;
  }

  /** Splits recipients by route; throws UnroutableRecipients when external ones have no relay. */
  async route(recipients: string[]): Promise<{ local: string[]; external: string[] }> {
    const local: string[] = [];
    const external: string[] = [];
    for (const rcpt of recipients) {
      if (await this.options.isOwnDomain(domainOf(rcpt))) local.push(rcpt);
      else external.push(rcpt);
    }
    if (external.length > 0 && !this.relay) throw new UnroutableRecipients(external);
    return { local, external };
  }

  async send(message: OutgoingMessage, dkim: DkimKey | undefined): Promise<SendResult> {
    const { local, external } = await this.route([...message.to, ...message.cc]);
    const messageId = `<${randomUUID()}@${domainOf(message.from.address)}>`;
    const mail = {
      from: format(message.from),
      to: message.to,
      cc: message.cc.length ? message.cc : undefined,
      replyTo: message.replyTo,
      subject: message.subject,
      text: message.text,
      html: message.html,
      inReplyTo: message.inReplyTo,
      references: message.inReplyTo,
      messageId,
      date: new Date(),
      attachments: message.attachments.map((a) => ({
        filename: a.filename,
        contentType: a.contentType,
        content: a.content,
      })),
      ...(dkim
        ? { dkim: { domainName: dkim.domain, keySelector: dkim.selector, privateKey: dkim.privateKeyPem } }
        : {}),
    };
    const accepted: string[] = [];
    const rejected: string[] = [];
    for (const [transport, recipients] of [
      [this.local, local],
      [this.relay, external],
    ] as const) {
      if (!transport || recipients.length === 0) continue;
      try {
        const info = await transport.sendMail({ ...mail, envelope: { from: message.from.address, to: recipients } });
        accepted.push(...info.accepted.map(String));
        rejected.push(...info.rejected.map(String));
      } catch (err) {
        const e = err as { code?: string; rejected?: unknown[]; responseCode?: number };
        if (e.code === 'EENVELOPE' && Array.isArray(e.rejected)) {
          rejected.push(...e.rejected.map(String));
          continue;
        }
        // Some recipients already have it: report the rest as not delivered rather than failing the whole send.
        if (accepted.length > 0) {
          rejected.push(...recipients);
          continue;
        }
        throw new BackendUnavailable(`the outbound mail server refused or failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    return { messageId, accepted, rejected };
  }

  close(): void {
    this.localTransport?.close();
    this.relay?.close();
  }
}
