import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomNonce, signTransferAuthorization } from '@agentstack/chain';
import { waitFor } from '@agentstack/core';
import { verifySignature } from '@agentstack/webhooks';
import type { PrivateKeyAccount } from 'viem/accounts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  agentCall,
  createWallet,
  ethBalance,
  fund,
  makeOwner,
  type Owner,
  ownedWallet,
  startWalletBed,
  type WalletBed,
} from './harness.js';
import { type RelayPeer, startRelayPeer } from './relay-peer.js';

let w: WalletBed;
let relay: RelayPeer;
let receiver: Server;
let hookUrl: string;
const hooks: { headers: IncomingMessage['headers']; body: string }[] = [];
let hookStatus: number[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const status = hookStatus.shift() ?? 200;
      if (status === 200) hooks.push({ headers: req.headers, body });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/owner-hook`;
  const { startPaymentTestbed } = await import('@agentstack/x402/testing');
  const { deployUniswapV2 } = await import('@agentstack/chain');
  const bed = await startPaymentTestbed();
  const uniswap = await deployUniswapV2({ rpcUrl: bed.devnet.rpcUrl });
  relay = await startRelayPeer(bed);
  w = await startWalletBed({ shared: { bed, uniswap }, env: { RELAY_URL: relay.url } });
});

afterAll(async () => {
  await w?.stop();
  await relay?.stop();
  await w?.bed.stop();
  await new Promise((resolve) => receiver?.close(resolve));
});

beforeEach(() => {
  hooks.length = 0;
  hookStatus = [];
});

/** The owner's own relay.sh mailbox (paid with the owner's key), where notification emails land. */
async function ownerMailbox(owner: Owner) {
  const res = await owner.client.fetch(`${relay.url}/v1/mailboxes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; address: string };
}

async function inbox(owner: Owner, mailbox: { id: string }) {
  const res = await owner.client.fetch(`${relay.url}/v1/mailboxes/${mailbox.id}/messages`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: { subject: string; from: string }[] }).items;
}

/** Owner of a funded agent wallet, with the webhook and email set; returns the webhook secret (shown once). */
async function setup(ownerUsdc = 50_000_000n, email?: string) {
  const owner = await makeOwner(w, ownerUsdc);
  const { wallet } = await ownedWallet(w, owner);
  await fund(w, wallet.address, 1_000_000n); // the agent's own route fees
  const set = await owner.call('PUT', `/v1/wallets/${wallet.address}/notifications`, {
    webhookUrl: hookUrl,
    ...(email ? { email } : {}),
  });
  expect(set.status).toBe(200);
  expect(set.body.webhook.secret).toMatch(/^whsec_/);
  expect((await owner.call('GET', `/v1/wallets/${wallet.address}/notifications`)).body.webhook.secret).toBeUndefined();
  return { owner, wallet, secret: set.body.webhook.secret as string };
}

async function ownerAuthorization(owner: PrivateKeyAccount, to: `0x${string}`, value: bigint, signer = owner) {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const message = { to, value, validAfter: 0n, validBefore: now + 3600n, nonce: randomNonce() };
  const signed = await signTransferAuthorization({
    account: signer,
    chain: w.bed.devnet.chain.viemChain,
    token: w.bed.devnet.chain.usdc,
    from: owner.address,
    ...message,
  });
  return {
    from: owner.address,
    to,
    value: value.toString(),
    validAfter: '0',
    validBefore: message.validBefore.toString(),
    nonce: message.nonce,
    signature: signed.signature,
  };
}

async function request(wallet: { address: `0x${string}`; agentToken: string }, amount = '5') {
  const res = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/fund-request`, {
    amount,
    reason: 'API credits for the research task',
  });
  expect(res.status).toBe(201);
  return res.body;
}

describe('funding requests', () => {
  it('notifies the owner by a signed webhook and by email through the real relay.sh, with a delivery log', async () => {
    const probe = await makeOwner(w);
    const mailbox = await ownerMailbox(probe);
    const { owner, wallet, secret } = await setup(50_000_000n, mailbox.address);
    const created = await request(wallet);
    expect(created).toMatchObject({
      status: 'pending',
      amount: '5.00',
      amountAtomic: '5000000',
      requestedBy: 'agent',
      owner: owner.account.address,
    });
    expect(created.approve.message).toEqual({ from: owner.account.address, to: wallet.address, value: '5000000' });
    await w.service.tick();
    const hook = hooks.find((h) => JSON.parse(h.body).type === 'fund_request.created');
    expect(hook).toBeDefined();
    const verified = verifySignature({ secret, header: hook!.headers['x-signature'] as string, body: hook!.body });
    expect(verified.ok).toBe(true);
    expect(JSON.parse(hook!.body).data).toMatchObject({ id: created.id, wallet: wallet.address, amount: '5.00' });
    // wallet.sh paid relay.sh (its own sender mailbox, then the send); relay delivered to the owner's mailbox.
    const mail = await waitFor(async () => (await inbox(probe, mailbox)).find((m) => m.subject.includes('5.00 USDC')), {
      timeoutMs: 20_000,
      what: 'the notification email in the owner’s relay.sh mailbox',
    });
    expect(mail.subject).toBe(`Funding request: 5.00 USDC for ${wallet.address}`);

    const webhookLog = await owner.call('GET', `/v1/wallets/${wallet.address}/deliveries?channel=webhook`);
    expect(webhookLog.body.items[0]).toMatchObject({
      eventType: 'fund_request.created',
      status: 'delivered',
      attempts: 1,
    });
    const emailLog = await owner.call('GET', `/v1/wallets/${wallet.address}/deliveries?channel=email`);
    expect(emailLog.body.items[0]).toMatchObject({
      to: mailbox.address,
      status: 'sent',
      eventType: 'fund_request.created',
    });
    expect(emailLog.body.items[0].relayMessageId).toMatch(/^<.+@relay\.test>$/);
  });

  it('retries a failed webhook with backoff and logs each attempt', async () => {
    const { owner, wallet } = await setup();
    hookStatus = [500];
    await request(wallet);
    await w.service.ctx.outbox.deliverDue();
    expect(hooks).toHaveLength(0);
    w.clock.offsetMs = 60_000;
    try {
      await w.service.ctx.outbox.deliverDue();
    } finally {
      w.clock.offsetMs = 0;
    }
    expect(hooks).toHaveLength(1);
    const log = await owner.call('GET', `/v1/wallets/${wallet.address}/deliveries`);
    expect(log.body.items[0]).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(log.body.items[0].log.map((a: any) => a.statusCode)).toEqual([500, 200]);
  });

  it('approval relays the owner’s authorization: exactly the amount moves, the owner pays no gas', async () => {
    const { owner, wallet } = await setup();
    const created = await request(wallet, '7.25');
    const before = { owner: await w.bed.balance(owner.account.address), wallet: await w.bed.balance(wallet.address) };
    expect(await ethBalance(w, owner.account.address)).toBe(0n);
    const res = await owner.call('POST', `/v1/fund-requests/${created.id}/approve`, {
      authorization: await ownerAuthorization(owner.account, wallet.address, 7_250_000n),
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: created.id, status: 'approved' });
    expect(res.body.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await w.bed.balance(wallet.address)).toBe(before.wallet + 7_250_000n);
    // The amount, plus the $0.001 route fee; and still no ETH at all: the service paid the gas.
    expect(await w.bed.balance(owner.account.address)).toBe(before.owner - 7_250_000n - 1_000n);
    expect(await ethBalance(w, owner.account.address)).toBe(0n);
    // A second approval is refused, nothing moves twice.
    const again = await owner.call('POST', `/v1/fund-requests/${created.id}/approve`, {
      authorization: await ownerAuthorization(owner.account, wallet.address, 7_250_000n),
    });
    expect(again.status).toBe(409);
    expect(await w.bed.balance(wallet.address)).toBe(before.wallet + 7_250_000n);
    await w.service.tick();
    expect(hooks.map((h) => JSON.parse(h.body).type)).toContain('fund_request.approved');
    const list = await agentCall(
      w,
      wallet.agentToken,
      'GET',
      `/v1/wallets/${wallet.address}/fund-requests?status=approved`,
    );
    expect(list.body.items.map((r: any) => r.id)).toEqual([created.id]);
  });

  it('refuses a wrong authorization naming the field, and an agent or stranger trying to approve', async () => {
    const { owner, wallet } = await setup();
    const created = await request(wallet, '2');
    const stranger = await makeOwner(w);
    const cases: [Record<string, unknown>, string][] = [
      [await ownerAuthorization(owner.account, wallet.address, 2_000_001n), 'body.authorization.value'],
      [await ownerAuthorization(owner.account, stranger.account.address, 2_000_000n), 'body.authorization.to'],
      [
        await ownerAuthorization(owner.account, wallet.address, 2_000_000n, stranger.account),
        'body.authorization.signature',
      ],
      [
        { ...(await ownerAuthorization(owner.account, wallet.address, 2_000_000n)), validBefore: '1' },
        'body.authorization.validBefore',
      ],
    ];
    const ownerBefore = await w.bed.balance(owner.account.address);
    for (const [authorization, field] of cases) {
      const res = await owner.call('POST', `/v1/fund-requests/${created.id}/approve`, { authorization });
      expect(res.status, field).toBe(400);
      expect(res.body.error.field).toBe(field);
    }
    expect((await owner.call('POST', `/v1/fund-requests/${created.id}/approve`, {})).body.error.field).toBe(
      'body.authorization',
    );
    const byAgent = await agentCall(w, wallet.agentToken, 'POST', `/v1/fund-requests/${created.id}/approve`, {
      authorization: await ownerAuthorization(owner.account, wallet.address, 2_000_000n),
    });
    expect(byAgent.status).toBe(403);
    const byStranger = await stranger.call('POST', `/v1/fund-requests/${created.id}/deny`, {});
    expect(byStranger.status).toBe(403);
    expect(await w.bed.balance(owner.account.address)).toBe(ownerBefore);
    const unknown = await owner.call('POST', '/v1/fund-requests/fr_0000000000000000000000/deny', {});
    expect(unknown.status).toBe(404);
  });

  it('denial leaves balances untouched', async () => {
    const { owner, wallet } = await setup();
    const created = await request(wallet, '3');
    const before = { owner: await w.bed.balance(owner.account.address), wallet: await w.bed.balance(wallet.address) };
    const res = await owner.call('POST', `/v1/fund-requests/${created.id}/deny`, { reason: 'not this month' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'denied', decisionReason: 'not this month' });
    expect(await w.bed.balance(wallet.address)).toBe(before.wallet);
    expect(await w.bed.balance(owner.account.address)).toBe(before.owner - 1_000n);
    const late = await owner.call('POST', `/v1/fund-requests/${created.id}/approve`, {
      authorization: await ownerAuthorization(owner.account, wallet.address, 3_000_000n),
    });
    expect(late.status).toBe(409);
    expect(await w.bed.balance(wallet.address)).toBe(before.wallet);
  });

  it('expires after 7 days (swept by the service) and can then not be approved', async () => {
    const { owner, wallet } = await setup();
    const created = await request(wallet, '4');
    expect(new Date(created.expiresAt).getTime() - new Date(created.createdAt).getTime()).toBe(7 * 24 * 3600 * 1000);
    const before = await w.bed.balance(wallet.address);
    w.clock.offsetMs = 7 * 24 * 3600 * 1000 + 1_000;
    try {
      await w.service.tick();
    } finally {
      w.clock.offsetMs = 0;
    }
    const list = await owner.call('GET', `/v1/wallets/${wallet.address}/fund-requests`);
    expect(list.body.items.find((r: any) => r.id === created.id)).toMatchObject({ status: 'expired' });
    const late = await owner.call('POST', `/v1/fund-requests/${created.id}/approve`, {
      authorization: await ownerAuthorization(owner.account, wallet.address, 4_000_000n),
    });
    expect(late.status).toBe(409);
    expect(await w.bed.balance(wallet.address)).toBe(before);
    expect(hooks.map((h) => JSON.parse(h.body).type)).toContain('fund_request.expired');
  });

  it('lets a managed wallet that owns another approve with its agent token: the service signs, under its policy', async () => {
    const parent = await createWallet(w, { label: 'parent' });
    await fund(w, parent.address, 20_000_000n);
    const child = await createWallet(w, { label: 'child' });
    // The parent's agent claims the child (its fee paid from the parent).
    const claimed = await agentCall(w, parent.agentToken, 'GET', `/v1/wallets/${child.address}`, undefined, {
      'x-claim-token': child.claimToken,
    });
    expect(claimed.status).toBe(200);
    expect(claimed.body.owner).toBe(parent.address);
    await fund(w, child.address, 1_000_000n);
    // Parent's owner… is nobody here; its policy is empty. Ask, approve without an authorization.
    const created = await request(child, '6');
    const res = await agentCall(w, parent.agentToken, 'POST', `/v1/fund-requests/${created.id}/approve`, {});
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('approved');
    expect(await w.bed.balance(child.address)).toBe(1_000_000n - 1_000n + 6_000_000n);
    const { rows } = await w.database.pool.query(
      `SELECT kind, status, counterparty FROM journal WHERE wallet = $1 AND kind = 'fund'`,
      [parent.address],
    );
    expect(rows).toEqual([{ kind: 'fund', status: 'confirmed', counterparty: child.address.toLowerCase() }]);
    // The child's agent cannot approve its own request.
    const own = await request(child, '1');
    expect((await agentCall(w, child.agentToken, 'POST', `/v1/fund-requests/${own.id}/approve`, {})).status).toBe(403);
  });

  it('takes a request from the owner too (paid through the official client), marked as the owner’s', async () => {
    const { owner, wallet } = await setup();
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/fund-request`, {
      amount: '0.5',
      reason: 'top-up reminder',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ requestedBy: 'owner', status: 'pending', amount: '0.50' });
    for (const [body, field] of [
      [{ amount: '0', reason: 'x' }, 'body.amount'],
      [{ amount: '1.0000001', reason: 'x' }, 'body.amount'],
      [{ amount: '1', reason: '' }, 'body.reason'],
      [{ amount: 1, reason: 'x' }, 'body.amount'],
    ] as const) {
      const bad = await owner.call('POST', `/v1/wallets/${wallet.address}/fund-request`, body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.body.error.field).toBe(field);
    }
  });

  it('refuses a request from a wallet nobody owns yet', async () => {
    const wallet = await createWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    const res = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/fund-request`, {
      amount: '1',
      reason: 'x',
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('no_owner');
    expect(await w.bed.balance(wallet.address)).toBe(1_000_000n);
  });
});
