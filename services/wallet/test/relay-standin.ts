import { randomUUID } from 'node:crypto';
import {
  type CoreVariables,
  errorHandler,
  forbidden,
  notFound,
  notFoundHandler,
  type RunningServer,
} from '@agentstack/core';
import { MemoryX402Store, type PaidVariables, PaymentGate } from '@agentstack/x402';
import { listen, type PaymentTestbed } from '@agentstack/x402/testing';
import { Hono } from 'hono';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/**
 * A tiny stand-in for relay.sh (built in parallel elsewhere), speaking the two routes of its contract that
 * wallet.sh uses, paid with x402 through the same gate every service uses:
 *   POST /v1/mailboxes ($0.01) → {id, address, expiresAt}
 *   POST /v1/mailboxes/:id/send ($0.005) {to, subject, text} → {id}; only the mailbox's creator may send.
 */
export interface RelayStandIn {
  url: string;
  sent: { mailbox: string; from: string; to: string; subject: string; text: string; payer: string }[];
  mailboxes: Map<string, { address: string; owner: string; expiresAt: Date }>;
  /** Answers this status to the next sends (to test retries). */
  failNext: number;
  stop(): Promise<void>;
}

export async function startRelayStandIn(bed: PaymentTestbed): Promise<RelayStandIn> {
  const gate = new PaymentGate({
    facilitator: bed.facilitator,
    network: bed.devnet.chain.network,
    payTo: privateKeyToAccount(generatePrivateKey()).address,
    asset: bed.devnet.chain.usdc,
    store: new MemoryX402Store(),
    serviceName: 'relay.sh (test stand-in)',
  });
  const state: RelayStandIn = {
    url: '',
    sent: [],
    mailboxes: new Map(),
    failNext: 0,
    stop: async () => {},
  };
  const app = new Hono<{ Variables: PaidVariables & CoreVariables }>();
  app.onError(errorHandler());
  app.notFound(notFoundHandler);
  app.post('/v1/mailboxes', gate.paid({ price: 10_000n, settle: 'first' }), (c) => {
    const id = `mbx_${randomUUID().replace(/-/g, '').slice(0, 22)}`;
    const address = `${id.slice(4, 14)}@relay.test`;
    const expiresAt = new Date(Date.now() + 24 * 3600_000);
    state.mailboxes.set(id, { address, owner: c.get('payer'), expiresAt });
    return c.json({ id, address, expiresAt: expiresAt.toISOString() }, 201);
  });
  app.post('/v1/mailboxes/:id/send', gate.paid({ price: 5_000n, settle: 'first' }), async (c) => {
    const mailbox = state.mailboxes.get(c.req.param('id'));
    if (!mailbox) throw notFound('mailbox');
    if (mailbox.owner !== c.get('payer')) throw forbidden();
    if (state.failNext > 0) {
      state.failNext--;
      return c.json({ error: { code: 'upstream_unavailable', message: 'smtp down', status: 503 } }, 503);
    }
    const body = (await c.req.json()) as { to: string; subject: string; text: string };
    state.sent.push({ mailbox: c.req.param('id'), from: mailbox.address, payer: c.get('payer'), ...body });
    return c.json({ id: `msg_${state.sent.length}` }, 202);
  });
  const server: RunningServer = await listen(app);
  state.url = server.url;
  state.stop = () => server.close();
  return state;
}
