import type { MailBackend, ProvisionedMailbox } from '../backend.js';
import type { MessageStore } from './message-store.js';
import { type Outbound, UnroutableRecipients } from './outbound.js';
import type { RunningSmtpServer } from './smtp.js';

/**
 * The embedded backend: messages live in relay's own PostgreSQL (written by the SMTP server's ingest),
 * sending goes through `Outbound`. A mailbox is just its row, so provisioning and removal are no-ops here:
 * deleting the row deletes its messages (foreign keys cascade).
 */
export class EmbeddedBackend implements MailBackend {
  readonly name = 'embedded' as const;
  private smtp: RunningSmtpServer | undefined;

  constructor(
    private readonly deps: {
      messages: MessageStore;
      outbound: Outbound;
      /** Starts the SMTP listener (deferred so tests and `main` choose the port). */
      startSmtp?: () => Promise<RunningSmtpServer>;
    },
  ) {}

  async start(): Promise<void> {
    if (this.deps.startSmtp && !this.smtp) this.smtp = await this.deps.startSmtp();
  }

  async stop(): Promise<void> {
    // Our own pooled connections to the SMTP server first, or closing it would wait for them.
    this.deps.outbound.close();
    await this.smtp?.close();
    this.smtp = undefined;
  }

  get smtpPort(): number | undefined {
    return this.smtp?.port;
  }

  async provisionMailbox(): Promise<ProvisionedMailbox> {
    return { ref: null, login: null, secret: null };
  }

  async removeMailbox(): Promise<void> {}

  listMessages: MailBackend['listMessages'] = (mailbox, query) => this.deps.messages.list(mailbox.id, query);

  getMessage: MailBackend['getMessage'] = (mailbox, id, options) => this.deps.messages.get(mailbox.id, id, options);

  getAttachment: MailBackend['getAttachment'] = (mailbox, messageId, attachmentId) =>
    this.deps.messages.attachment(mailbox.id, messageId, attachmentId);

  deleteMessage: MailBackend['deleteMessage'] = (mailbox, id) => this.deps.messages.delete(mailbox.id, id);

  countMessages: MailBackend['countMessages'] = (mailbox) => this.deps.messages.count(mailbox.id);

  async unroutable(recipients: string[]): Promise<string[]> {
    try {
      await this.deps.outbound.route(recipients);
      return [];
    } catch (err) {
      if (err instanceof UnroutableRecipients) return err.recipients;
      throw err;
    }
  }

  send: MailBackend['send'] = (_mailbox, message, dkim) => this.deps.outbound.send(message, dkim);

  async provisionDomain(): Promise<void> {}

  async removeDomain(): Promise<void> {}
}
