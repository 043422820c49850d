import {
  AppError,
  type Clock,
  type Logger,
  rateLimited,
  unprocessable,
  upstreamUnavailable,
  utcDay,
} from '@agentstack/core';
import { BackendUnavailable, type MailBackend, type OutgoingMessage, type SendResult } from './backend.js';
import type { MailboxRow } from './db.js';
import type { Domains } from './domains.js';
import type { RelayStore } from './store.js';

export interface SendRequest {
  to: string[];
  cc: string[];
  subject: string;
  text?: string | undefined;
  html?: string | undefined;
  replyTo?: string | undefined;
  inReplyTo?: string | undefined;
  fromName?: string | undefined;
  attachments: { filename: string; contentType: string; content: Buffer }[];
}

export interface SendLimits {
  dailyLimit: number;
  maxRecipients: number;
  maxBytes: number;
}

const payloadTooLarge = (message: string, field: string) => new AppError('payload_too_large', message, 413, { field });

/**
 * The guardrails around sending, in the order a paid send meets them: `check` (recipient count, size,
 * routability) and `reserve` (the daily limit) run before the payment settles; `send` after it. Only the
 * owner of a live mailbox reaches any of this (the HTTP layer checked), and mail always leaves from the
 * mailbox's own address: there is no way to relay for others.
 */
export class Sender {
  constructor(
    private readonly deps: {
      store: RelayStore;
      backend: MailBackend;
      domains: Domains;
      clock: Clock;
      log: Logger;
      limits: SendLimits;
    },
  ) {}

  /** Rejects what can never be sent (before any money moves). */
  async check(request: SendRequest): Promise<void> {
    const { limits } = this.deps;
    const recipients = [...request.to, ...request.cc];
    if (recipients.length > limits.maxRecipients) {
      throw unprocessable('policy_violation', `at most ${limits.maxRecipients} recipients (to + cc) per message`, {
        limit: limits.maxRecipients,
      });
    }
    const bytes =
      Buffer.byteLength(request.subject) +
      Buffer.byteLength(request.text ?? '') +
      Buffer.byteLength(request.html ?? '') +
      request.attachments.reduce((sum, a) => sum + a.content.length, 0);
    if (bytes > limits.maxBytes) {
      throw payloadTooLarge(`the message is ${bytes} bytes; the limit is ${limits.maxBytes}`, 'body');
    }
    const unroutable = await this.deps.backend.unroutable(recipients);
    if (unroutable.length > 0) {
      throw unprocessable(
        'policy_violation',
        `these recipients cannot be reached from this server: ${unroutable.join(', ')}`,
        {
          unroutable,
        },
      );
    }
  }

  /** Takes one of today's sends (UTC day); 429 when the mailbox used them all. Returns the day to release. */
  async reserve(mailbox: MailboxRow): Promise<string> {
    const day = utcDay(this.deps.clock.now());
    if (!(await this.deps.store.reserveSend(mailbox.id, day, this.deps.limits.dailyLimit))) {
      const now = this.deps.clock.now();
      const tomorrow = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
      throw rateLimited(
        `this mailbox sent its ${this.deps.limits.dailyLimit} messages for today (UTC)`,
        (tomorrow - now.getTime()) / 1000,
      );
    }
    return day;
  }

  /** Today's sends (UTC) against the limit. */
  async usage(mailbox: MailboxRow): Promise<{ sentToday: number; dailyLimit: number }> {
    const sentToday = await this.deps.store.sendsToday(mailbox.id, utcDay(this.deps.clock.now()));
    return { sentToday, dailyLimit: this.deps.limits.dailyLimit };
  }

  release(mailbox: MailboxRow, day: string): Promise<void> {
    return this.deps.store.releaseSend(mailbox.id, day);
  }

  /** Composes, signs with the mailbox domain's DKIM key, and hands the message over. */
  async send(mailbox: MailboxRow, request: SendRequest, reservedDay: string): Promise<SendResult> {
    const message: OutgoingMessage = {
      from: { address: mailbox.address, name: request.fromName ?? '' },
      to: request.to,
      cc: request.cc,
      replyTo: request.replyTo,
      subject: request.subject,
      text: request.text,
      html: request.html,
      inReplyTo: request.inReplyTo,
      attachments: request.attachments,
    };
    try {
      const dkim = await this.deps.domains.signingKey(mailbox.domain);
      return await this.deps.backend.send(mailbox, message, dkim);
    } catch (err) {
      // Nothing left: the send does not count against today's limit.
      await this.release(mailbox, reservedDay).catch(() => {});
      if (err instanceof BackendUnavailable) {
        this.deps.log.error({ err, mailbox: mailbox.id }, 'sending failed');
        throw new AppError('upstream_unavailable', `${err.message}; the payment for this send was settled`, 503, {
          details: { paymentSettled: true, sent: false },
        });
      }
      throw err instanceof AppError
        ? err
        : upstreamUnavailable('sending failed; the payment for this send was settled');
    }
  }
}
