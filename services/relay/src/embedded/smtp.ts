import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@agentstack/core';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { IncomingEnvelope, IngestResult } from './ingest.js';
import { RecipientGone } from './ingest.js';

export type RecipientVerdict = { kind: 'accept'; mailboxId: string } | { kind: 'relay_denied' } | { kind: 'unknown' };

export interface SmtpServerOptions {
  host: string;
  port: number;
  /** The name in the greeting and Received headers. */
  hostname: string;
  maxMessageBytes: number;
  maxRecipients: number;
  maxClients: number;
  /** Decides at RCPT TO: one of our live mailboxes, a domain we do not serve, or no such mailbox. */
  resolveRecipient(address: string): Promise<RecipientVerdict>;
  ingest(raw: Buffer, envelope: IncomingEnvelope): Promise<IngestResult>;
  tls?: { keyPath: string; certPath: string } | undefined;
  log: Logger;
}

/** Per-transaction state; smtp-server keeps one session per connection, so it is reset on every MAIL FROM. */
interface Transaction {
  recipients: { mailboxId: string; address: string }[];
}

const smtpError = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

export interface RunningSmtpServer {
  port: number;
  server: SMTPServer;
  close(): Promise<void>;
}

/**
 * The embedded backend's MX: accepts mail only for live mailboxes on the domains we serve (no relaying,
 * no AUTH), enforces the size limit while reading, and answers 250 only after the message is committed.
 */
export async function startSmtpServer(options: SmtpServerOptions): Promise<RunningSmtpServer> {
  const transactions = new WeakMap<SMTPServerSession, Transaction>();
  const server = new SMTPServer({
    name: options.hostname,
    banner: 'relay.sh ESMTP',
    size: options.maxMessageBytes,
    authOptional: true,
    disabledCommands: options.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(options.tls ? { key: readFileSync(options.tls.keyPath), cert: readFileSync(options.tls.certPath) } : {}),
    disableReverseLookup: true,
    maxClients: options.maxClients,
    logger: false,
    socketTimeout: 60_000,
    // On shutdown, clients get this long to finish before their connections are cut.
    closeTimeout: 5_000,

    onMailFrom(_address, session, callback) {
      transactions.set(session, { recipients: [] });
      callback();
    },

    onRcptTo(address, session, callback) {
      const transaction = transactions.get(session) ?? { recipients: [] };
      transactions.set(session, transaction);
      if (transaction.recipients.length >= options.maxRecipients) {
        return callback(smtpError(452, `4.5.3 Too many recipients (at most ${options.maxRecipients} per message)`));
      }
      const wanted = address.address.trim().toLowerCase();
      options
        .resolveRecipient(wanted)
        .then((verdict) => {
          if (verdict.kind === 'relay_denied') {
            return callback(smtpError(550, '5.7.1 Relaying denied: this server accepts mail only for its own domains'));
          }
          if (verdict.kind === 'unknown') return callback(smtpError(550, `5.1.1 <${wanted}>: no such mailbox`));
          if (!transaction.recipients.some((r) => r.mailboxId === verdict.mailboxId)) {
            transaction.recipients.push({ mailboxId: verdict.mailboxId, address: wanted });
          }
          callback();
        })
        .catch((err: unknown) => {
          options.log.error({ err }, 'recipient lookup failed');
          callback(smtpError(451, '4.3.0 Temporary failure, try again later'));
        });
    },

    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      let kept = 0;
      stream.on('data', (chunk: Buffer) => {
        // Keep reading an oversized message to the end (the client expects a reply after it) but stop storing it.
        if (kept <= options.maxMessageBytes) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      stream.once('error', (err) => callback(err));
      stream.once('end', () => {
        if (stream.sizeExceeded || kept > options.maxMessageBytes) {
          return callback(smtpError(552, `5.3.4 Message too big (the limit is ${options.maxMessageBytes} bytes)`));
        }
        const transaction = transactions.get(session);
        if (!transaction || transaction.recipients.length === 0) {
          return callback(smtpError(503, '5.5.1 No valid recipients'));
        }
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : null;
        options
          .ingest(Buffer.concat(chunks, kept), {
            mailFrom: mailFrom || null,
            recipients: transaction.recipients,
            clientIp: session.remoteAddress,
            helo: session.hostNameAppearsAs || session.clientHostname || '',
          })
          .then((result) => callback(null, `Message stored as ${result.messageIds.join(',')}`))
          .catch((err: unknown) => {
            if (err instanceof RecipientGone) return callback(smtpError(451, `4.2.1 ${err.message}; try again`));
            options.log.error({ err }, 'storing an incoming message failed');
            callback(smtpError(451, '4.3.0 Could not store the message; try again later'));
          });
      });
    },
  });
  server.on('error', (err) => options.log.warn({ err }, 'smtp server error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  options.log.info({ host: options.host, port }, 'smtp server listening');
  return {
    port,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
