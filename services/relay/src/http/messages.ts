import { bodyLimit, notFound, validate } from '@agentstack/core';
import { dollars } from '../prices.js';
import * as s from '../schemas.js';
import type { SendRequest } from '../sending.js';
import { type C, type RouteKit, valid } from './kit.js';

/** Sending, and the messages of a mailbox with their attachments. */
export function mountMessageRoutes(kit: RouteKit): void {
  const { app, routes, paid, ownedMailbox, deps } = kit;
  const { prices, sender, backend, limits } = deps;
  const readPrice = dollars(prices.read);
  routes.push({
    method: 'post',
    path: '/v1/mailboxes/:id/send',
    summary: 'send a message from the mailbox (DKIM-signed)',
    description: `Irreversible, so it settles first; every check (ownership, recipients ≤ limit, size, routability, today's send limit) runs before the payment settles, and a refused send costs nothing. If the mail server then fails, the answer is 503 with details.paymentSettled=true and the send does not count against the daily limit.`,
    price: dollars(prices.send),
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.mailboxParams,
    body: s.sendBody,
    response: s.sendResponse,
  });
  app.post(
    '/v1/mailboxes/:id/send',
    bodyLimit(Math.ceil(limits.maxSendBytes * 1.4) + 64 * 1024),
    validate('param', s.mailboxParams),
    validate('json', s.sendBody),
    paid({
      price: prices.send,
      settle: 'first',
      precheck: async (c) => {
        const ctx = c as C;
        const mailbox = await ownedMailbox(ctx);
        const request = valid(ctx, 'json', s.sendBody) as SendRequest;
        ctx.set('sendRequest', request);
        await sender.check(request);
        ctx.set('reservedDay', await sender.reserve(mailbox));
      },
      onSettleFailure: async (c) => {
        const ctx = c as C;
        await sender.release(ctx.get('mailbox'), ctx.get('reservedDay'));
      },
    }),
    async (c) => {
      const mailbox = c.get('mailbox');
      const result = await sender.send(mailbox, c.get('sendRequest'), c.get('reservedDay'));
      return c.json({
        messageId: result.messageId,
        from: mailbox.address,
        accepted: result.accepted,
        rejected: result.rejected,
        ...(await sender.usage(mailbox)),
      });
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/messages',
    summary: 'messages, newest first',
    description: 'Filters: unread=true|false; from=<address> (exact, case-insensitive) or from=@domain.',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.mailboxParams,
    query: s.messagesQuery,
    response: s.messageListResponse,
  });
  app.get(
    '/v1/mailboxes/:id/messages',
    validate('param', s.mailboxParams),
    validate('query', s.messagesQuery),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const q = valid(c, 'query', s.messagesQuery);
      return c.json(await backend.listMessages(mailbox, q));
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/messages/:msg',
    summary: 'one message: headers, text, html, attachment list, SPF/DKIM/DMARC results; marks it read',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.messageParams,
    response: s.messageDetailResponse,
  });
  app.get(
    '/v1/mailboxes/:id/messages/:msg',
    validate('param', s.messageParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const { msg } = valid(c, 'param', s.messageParams);
      const message = await backend.getMessage(mailbox, msg, { markRead: true });
      if (!message) throw notFound('message');
      return c.json({
        ...message,
        attachments: message.attachments.map((a) => ({
          ...a,
          url: `/v1/mailboxes/${mailbox.id}/messages/${encodeURIComponent(msg)}/attachments/${encodeURIComponent(a.id)}`,
        })),
      });
    },
  );

  routes.push({
    method: 'get',
    path: '/v1/mailboxes/:id/messages/:msg/attachments/:att',
    summary: 'download one attachment (the raw bytes, with its Content-Type)',
    price: readPrice,
    settlement: 'after-success',
    auth: 'x402 payer (owner)',
    params: s.attachmentParams,
  });
  app.get(
    '/v1/mailboxes/:id/messages/:msg/attachments/:att',
    validate('param', s.attachmentParams),
    paid({ price: prices.read, settle: 'after-success' }),
    async (c) => {
      const mailbox = await ownedMailbox(c);
      const { msg, att } = valid(c, 'param', s.attachmentParams);
      const attachment = await backend.getAttachment(mailbox, msg, att);
      if (!attachment) throw notFound('attachment');
      const filename = (attachment.filename ?? 'attachment').replace(/[^\w.\- ]/g, '_');
      return new Response(new Uint8Array(attachment.content), {
        status: 200,
        headers: {
          'content-type': attachment.contentType,
          'content-length': String(attachment.content.length),
          'content-disposition': `attachment; filename="${filename}"; filename*=UTF-8''${encodeURIComponent(attachment.filename ?? 'attachment')}`,
          'x-content-type-options': 'nosniff',
          // Whatever the sender claimed the type to be, a browser must not run it in our origin.
          'content-security-policy': "sandbox; default-src 'none'",
        },
      });
    },
  );

  routes.push({
    method: 'delete',
    path: '/v1/mailboxes/:id/messages/:msg',
    summary: 'delete one message',
    price: readPrice,
    settlement: 'first',
    auth: 'x402 payer (owner)',
    idempotent: true,
    params: s.messageParams,
    response: s.deletedResponse,
  });
  app.delete(
    '/v1/mailboxes/:id/messages/:msg',
    validate('param', s.messageParams),
    paid({
      price: prices.read,
      settle: 'first',
      precheck: async (c) => {
        const mailbox = await ownedMailbox(c as C);
        const { msg } = valid(c as C, 'param', s.messageParams);
        if (!(await backend.getMessage(mailbox, msg, { markRead: false }))) throw notFound('message');
      },
    }),
    async (c) => {
      const { msg } = valid(c, 'param', s.messageParams);
      if (!(await backend.deleteMessage(c.get('mailbox'), msg))) throw notFound('message');
      return c.json({ id: msg, deleted: true as const });
    },
  );
}
