import type { Page } from '@agentstack/core';
import type { MailboxRow } from './db.js';
import type { DkimKey } from './dkim.js';

/**
 * Where mail lives and how it moves. `embedded` (default): our own SMTP server, messages in PostgreSQL,
 * outbound through an SMTP relay. `stalwart` (production): accounts on a Stalwart server, mail read and sent
 * over JMAP. The HTTP layer and domain logic only see this interface.
 */
export interface MailBackend {
  readonly name: 'embedded' | 'stalwart';
  /** Creates whatever the backend keeps per mailbox; the result is stored on the mailbox row. */
  provisionMailbox(mailbox: {
    id: string;
    address: string;
    localPart: string;
    domain: string;
  }): Promise<ProvisionedMailbox>;
  /** Removes the mailbox and all its mail from the backend (the row itself is deleted by the caller). */
  removeMailbox(mailbox: MailboxRow): Promise<void>;
  listMessages(mailbox: MailboxRow, query: MessageQuery): Promise<Page<MessageSummary>>;
  /** One message; marks it read when `markRead` (an API read is an agent reading its mail). */
  getMessage(
    mailbox: MailboxRow,
    messageId: string,
    options: { markRead: boolean },
  ): Promise<MessageDetail | undefined>;
  getAttachment(mailbox: MailboxRow, messageId: string, attachmentId: string): Promise<AttachmentContent | undefined>;
  deleteMessage(mailbox: MailboxRow, messageId: string): Promise<boolean>;
  countMessages(mailbox: MailboxRow): Promise<{ total: number; unread: number }>;
  /** Recipients this backend has no route to (checked before a send is paid for). */
  unroutable(recipients: string[]): Promise<string[]>;
  send(mailbox: MailboxRow, message: OutgoingMessage, dkim: DkimKey | undefined): Promise<SendResult>;
  /** Makes a verified custom domain deliverable (e.g. creates it and its DKIM key on Stalwart). */
  provisionDomain(domain: { name: string; dkim: DkimKey }): Promise<void>;
  removeDomain(name: string): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ProvisionedMailbox {
  ref: string | null;
  login: string | null;
  /** A secret to keep sealed (e.g. the account password relay authenticates with). */
  secret: string | null;
}

export interface MessageQuery {
  limit: number;
  cursor?: string | undefined;
  /** true: only unread; false: only read; undefined: all. */
  unread?: boolean | undefined;
  /** An address (exact, case-insensitive) or `@domain`. */
  from?: string | undefined;
}

export interface Address {
  address: string;
  name: string;
}

/** SPF/DKIM/DMARC verdicts (`pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`, …). */
export interface AuthResults {
  spf: string;
  dkim: string;
  dmarc: string;
  /** The domains whose DKIM signatures passed. */
  dkimDomains?: string[];
}

export interface MessageSummary {
  id: string;
  from: Address | null;
  to: Address[];
  subject: string;
  receivedAt: string;
  size: number;
  unread: boolean;
  hasAttachments: boolean;
  preview: string;
}

export interface AttachmentInfo {
  id: string;
  filename: string | null;
  contentType: string;
  size: number;
  disposition: string | null;
  contentId: string | null;
}

export interface MessageDetail extends MessageSummary {
  messageIdHeader: string | null;
  cc: Address[];
  replyTo: Address[];
  sentAt: string | null;
  headers: [string, string][];
  text: string | null;
  html: string | null;
  attachments: AttachmentInfo[];
  auth: AuthResults;
}

export interface AttachmentContent {
  filename: string | null;
  contentType: string;
  content: Buffer;
}

export interface OutgoingAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface OutgoingMessage {
  from: Address;
  to: string[];
  cc: string[];
  replyTo?: string | undefined;
  subject: string;
  text?: string | undefined;
  html?: string | undefined;
  inReplyTo?: string | undefined;
  attachments: OutgoingAttachment[];
}

export interface SendResult {
  /** The Message-ID header of the sent message. */
  messageId: string;
  accepted: string[];
  rejected: string[];
}

/** A backend failure the caller may retry later (503), as opposed to bad input. */
export class BackendUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendUnavailable';
  }
}
