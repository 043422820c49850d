import { waitFor } from '@agentstack/core';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCall, createWallet, fund, fundEthTo, ownedWallet, startWalletBed, type WalletBed } from './harness.js';

let w: WalletBed;
const stranger = () => privateKeyToAccount(generatePrivateKey()).address;

beforeAll(async () => {
  w = await startWalletBed();
});

afterAll(async () => {
  await w?.stop();
});

describe('history', () => {
  it('lists journal entries and observed incoming transfers, newest first, paginated', async () => {
    const { owner, wallet } = await ownedWallet(w);
    // Incoming transfers carry their block's time (whole seconds). anvil runs its clock ahead when it mines
    // several blocks a second (as the setup does), so each step waits until the chain's clock is not ahead of
    // ours and a new second has begun.
    const tick = async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      await waitFor(async () => (await w.publicClient.getBlock()).timestamp < BigInt(Math.floor(Date.now() / 1000)), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: 'the devnet clock to catch up',
      });
    };
    await tick();
    await fund(w, wallet.address, 3_000_000n); // incoming #1 (a mint from the faucet)
    await tick();
    const to = stranger();
    await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.5' });
    await tick();
    await fund(w, wallet.address, 1_000_000n); // incoming #2
    await tick();
    await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.25' });

    const all = await owner.call('GET', `/v1/wallets/${wallet.address}/history?limit=100`);
    expect(all.status).toBe(200);
    const items = all.body.items as any[];
    // Newest first: the agent's send (and its fee), the second incoming, the owner's send, the first incoming.
    const shape = items.map((i) => `${i.type}:${i.kind}:${i.direction}:${i.amount}`);
    expect(shape).toEqual([
      'journal:send:out:0.25',
      'journal:fee:out:0.005',
      'incoming:transfer:in:1.00',
      'journal:send:out:0.50',
      'incoming:transfer:in:3.00',
    ]);
    expect(items.every((i) => i.status === 'confirmed')).toBe(true);
    const times = items.map((i) => new Date(i.at).getTime());
    expect([...times].sort((a, b) => b - a)).toEqual(times);

    const pages: any[] = [];
    let cursor: string | null = null;
    do {
      const res = await owner.call(
        'GET',
        `/v1/wallets/${wallet.address}/history?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      pages.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(pages.map((i) => i.id)).toEqual(items.map((i) => i.id));
    const bad = await owner.call('GET', `/v1/wallets/${wallet.address}/history?cursor=garbage`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('query.cursor');
  });
});

describe('policy', () => {
  it('reads the policy with today’s usage and its reset time, and validates a new one naming the field', async () => {
    const { owner, wallet } = await ownedWallet(w);
    const put = await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, {
      maxPerTx: '2',
      maxPerDay: '10',
      maxPerRecipientPerDay: '3',
      recipientCaps: { [owner.account.address]: '5' },
      serviceCaps: { 'api.example.com': '1' },
      allow: null,
      deny: ['*.evil.example'],
      autoPauseBelow: '0.5',
    });
    expect(put.status).toBe(200);
    expect(put.body.policy).toMatchObject({ maxPerTx: '2.00', maxPerDay: '10.00', deny: ['*.evil.example'] });
    const got = await owner.call('GET', `/v1/wallets/${wallet.address}/policy`);
    expect(got.body.usage).toMatchObject({ spentToday: '0.00', remainingToday: '10.00' });
    expect(got.body.usage.resetsAt).toMatch(/T00:00:00\.000Z$/);
    for (const [body, field] of [
      [{ maxPerTx: 5 }, 'body.maxPerTx'],
      [{ maxPerDay: '1.1234567' }, 'body.maxPerDay'],
      [{ allow: ['not a host!'] }, 'body.allow.0'],
      [{ whatever: true }, 'body'],
    ] as const) {
      const res = await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field, JSON.stringify(body)).toBe(field);
    }
    // Nothing of the refused bodies was stored.
    expect((await owner.call('GET', `/v1/wallets/${wallet.address}/policy`)).body.policy.maxPerTx).toBe('2.00');
  });

  it('autoPauseBelow refuses the send that would cross it, pauses the wallet and tells the owner', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 10_000_000n);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { autoPauseBelow: '4' });
    const to = stranger();
    expect((await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '5' })).status).toBe(200);
    const crossing = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '2' });
    expect(crossing.status).toBe(422);
    expect(crossing.body.error.details).toMatchObject({ rule: 'autoPauseBelow', remaining: '1.00', paused: true });
    const state = await owner.call('GET', `/v1/wallets/${wallet.address}`);
    expect(state.body.safety.paused).toEqual([expect.objectContaining({ scope: 'all', source: 'policy' })]);
    expect((await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.5' })).status).toBe(409);
    expect(await w.bed.balance(to)).toBe(5_000_000n);
  });
});

describe('notifications', () => {
  it('refuses a webhook URL that points at a private address, naming the field', async () => {
    const { owner, wallet } = await ownedWallet(w);
    for (const webhookUrl of ['http://10.0.0.1/hook', 'http://169.254.169.254/', 'ftp://example.com/x']) {
      const res = await owner.call('PUT', `/v1/wallets/${wallet.address}/notifications`, { webhookUrl });
      expect(res.status, webhookUrl).toBe(400);
      expect(res.body.error.field).toBe('body.webhookUrl');
    }
    const bad = await owner.call('PUT', `/v1/wallets/${wallet.address}/notifications`, { email: 'not-an-email' });
    expect(bad.body.error.field).toBe('body.email');
    const ok = await owner.call('PUT', `/v1/wallets/${wallet.address}/notifications`, {
      webhookUrl: 'http://127.0.0.1:9/hook',
      webhookSecret: 'my-own-secret-0123456789',
      events: ['fund_request.created'],
    });
    expect(ok.status).toBe(200);
    expect(ok.body.webhook).toMatchObject({
      url: 'http://127.0.0.1:9/hook',
      events: ['fund_request.created'],
      status: 'active',
    });
    expect(ok.body.webhook.secret).toBeUndefined(); // the caller chose it: not echoed
    const removed = await owner.call('PUT', `/v1/wallets/${wallet.address}/notifications`, { webhookUrl: null });
    expect(removed.body.webhook).toBeNull();
  });
});

describe('deactivate', () => {
  it('sweeps the remaining USDC to sweepTo, deactivates, and the agent token stops working', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 4_200_000n);
    const byAgent = await agentCall(w, wallet.agentToken, 'DELETE', `/v1/wallets/${wallet.address}`);
    expect(byAgent.status).toBe(403);
    const to = stranger();
    const res = await owner.call('DELETE', `/v1/wallets/${wallet.address}?sweepTo=${to}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'deactivated',
      sweep: { kind: 'sweep', status: 'confirmed', amount: '4.20' },
    });
    expect(await w.bed.balance(to)).toBe(4_200_000n);
    expect(await w.bed.balance(wallet.address)).toBe(0n);
    expect((await agentCall(w, wallet.agentToken, 'GET', `/v1/wallets/${wallet.address}`)).status).toBe(401);
    const details = await owner.call('GET', `/v1/wallets/${wallet.address}`);
    expect(details.body.status).toBe('deactivated');
    const send = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.1' });
    expect(send.status).toBe(409);
    expect((await owner.call('DELETE', `/v1/wallets/${wallet.address}`)).status).toBe(409);
  });

  it('deactivates without a sweep, and refuses a bad sweepTo naming the field', async () => {
    const { owner, wallet } = await ownedWallet(w);
    const bad = await owner.call('DELETE', `/v1/wallets/${wallet.address}?sweepTo=0x12`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('query.sweepTo');
    const res = await owner.call('DELETE', `/v1/wallets/${wallet.address}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'deactivated', sweep: null });
  });
});

describe('wallet creation limits', () => {
  it('rate-limits creation per client IP with 429 and Retry-After', async () => {
    const limited = await startWalletBed({
      shared: { bed: w.bed, uniswap: w.uniswap },
      env: { WALLET_CREATE_LIMIT: '2', WALLET_CREATE_WINDOW_SECONDS: '3600' },
    });
    try {
      await createWallet(limited);
      await createWallet(limited);
      const third = await fetch(`${limited.url}/v1/wallets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await third.json()) as any).error.code).toBe('rate_limited');
    } finally {
      await limited.stop();
    }
  });
});

describe('the service gas account', () => {
  it('out of ETH: sends answer 503, stay journaled, do not trip the wallet’s breaker, and complete once it is funded', async () => {
    const gas = generatePrivateKey();
    const broke = await startWalletBed({
      shared: { bed: w.bed, uniswap: w.uniswap },
      env: { WALLET_GAS_PRIVATE_KEY: gas, WALLET_BREAKER_THRESHOLD: '1' },
    });
    try {
      const health = (await (await fetch(`${broke.url}/v1/health`)).json()) as any;
      expect(health.gasAccount).toMatchObject({ address: privateKeyToAccount(gas).address, eth: '0.0', ok: false });
      const { owner, wallet } = await ownedWallet(broke);
      await fund(broke, wallet.address, 2_000_000n);
      const to = stranger();
      const res = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('upstream_unavailable');
      const state = await owner.call('GET', `/v1/wallets/${wallet.address}`);
      expect(state.body.safety.paused).toEqual([]);
      expect(state.body.safety.breakers).toEqual([]);
      const { rows } = await broke.database.pool.query(
        `SELECT status FROM journal WHERE wallet = $1 AND kind = 'send'`,
        [wallet.address],
      );
      expect(rows).toEqual([{ status: 'intent' }]);
      // Once the operator funds the gas account, the reconciler finishes the send, once.
      await fundEthTo(broke, privateKeyToAccount(gas).address, 10n ** 18n);
      await broke.service.tick();
      const after = await broke.database.pool.query(`SELECT status FROM journal WHERE wallet = $1 AND kind = 'send'`, [
        wallet.address,
      ]);
      expect(after.rows).toEqual([{ status: 'confirmed' }]);
      expect(await broke.bed.balance(to)).toBe(1_000_000n);
    } finally {
      await broke.stop();
    }
  });
});
