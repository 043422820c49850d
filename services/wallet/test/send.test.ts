import { parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentCall,
  ethBalance,
  fund,
  fundEthTo,
  makeOwner,
  ownedWallet,
  startWalletBed,
  type WalletBed,
} from './harness.js';

let w: WalletBed;
const stranger = () => privateKeyToAccount(generatePrivateKey()).address;

beforeAll(async () => {
  w = await startWalletBed({ env: { WALLET_BREAKER_THRESHOLD: '3' } });
});

afterAll(async () => {
  await w?.stop();
});

async function journalCount(wallet: string, kind = 'send') {
  const { rows } = await w.database.pool.query(
    `SELECT status, count(*)::int AS n FROM journal WHERE wallet = $1 AND kind = $2 GROUP BY status`,
    [wallet, kind],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
}

describe('send', () => {
  it('sends USDC from a wallet holding no ETH (the service relays the EIP-3009 authorization)', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 10_000_000n);
    const to = stranger();
    const ownerBefore = await w.bed.balance(owner.account.address);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '2.5', asset: 'USDC' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      kind: 'send',
      asset: 'USDC',
      amount: '2.50',
      amountAtomic: '2500000',
      counterparty: to.toLowerCase(),
      status: 'confirmed',
      actor: 'owner',
    });
    expect(res.body.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await w.bed.balance(to)).toBe(2_500_000n);
    expect(await w.bed.balance(wallet.address)).toBe(7_500_000n);
    expect(await ethBalance(w, wallet.address)).toBe(0n);
    // The owner paid the $0.005 route fee, nothing else.
    expect(await w.bed.balance(owner.account.address)).toBe(ownerBefore - 5_000n);
    expect(await journalCount(wallet.address)).toEqual({ confirmed: 1 });
  });

  it('lets the agent send within policy (its fee from the wallet) and refuses it outside, naming the rule', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 10_000_000n);
    const put = await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { maxPerTx: '1', maxPerDay: '3' });
    expect(put.status).toBe(200);
    const to = stranger();
    const ok = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' });
    expect(ok.status).toBe(200);
    expect(ok.body.actor).toBe('agent');
    expect(await w.bed.balance(to)).toBe(1_000_000n);
    // 1 sent + 0.005 fee.
    expect(await w.bed.balance(wallet.address)).toBe(10_000_000n - 1_000_000n - 5_000n);

    const tooBig = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, {
      to,
      amount: '1.01',
    });
    expect(tooBig.status).toBe(422);
    expect(tooBig.body.error.code).toBe('policy_violation');
    expect(tooBig.body.error.details).toMatchObject({ rule: 'maxPerTx', limit: '1.00' });
    expect(tooBig.body.error.message).toMatch(/maxPerTx.*remaining allowance/);

    await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' });
    // Used today: 2 sent + 3 fees (this call's own fee included; the refused call's was not charged): 0.985 left.
    const dayLimit = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, {
      to,
      amount: '1',
    });
    expect(dayLimit.status).toBe(422);
    expect(dayLimit.body.error.details.rule).toBe('maxPerDay');
    expect(dayLimit.body.error.details.remaining).toBe('0.985');
    expect(await w.bed.balance(to)).toBe(2_000_000n);
  });

  it('sends ETH only from a wallet that holds ETH for gas, and says so', async () => {
    const { owner, wallet } = await ownedWallet(w);
    const to = stranger();
    const broke = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.01', asset: 'ETH' });
    expect(broke.status).toBe(422);
    expect(broke.body.error.code).toBe('insufficient_funds');
    expect(broke.body.error.message).toMatch(/ETH.*gas/);
    await fundEthTo(w, wallet.address, parseEther('1'));
    // The policy's USDC limits apply to ETH at the pool's price (~2,500 USDC per ETH here).
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { maxPerTx: '100' });
    const overLimit = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, {
      to,
      amount: '0.25',
      asset: 'ETH',
    });
    expect(overLimit.status).toBe(422);
    expect(overLimit.body.error.details.rule).toBe('maxPerTx');
    expect(overLimit.body.error.message).toMatch(/62\d\.\d+ USDC exceeds maxPerTx 100\.00/);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, {});
    const sent = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.25', asset: 'ETH' });
    expect(sent.status).toBe(200);
    expect(sent.body).toMatchObject({ asset: 'ETH', amount: '0.25', amountAtomic: parseEther('0.25').toString() });
    expect(await ethBalance(w, to)).toBe(parseEther('0.25'));
    expect(await ethBalance(w, wallet.address)).toBeLessThan(parseEther('0.75'));
    expect(await ethBalance(w, wallet.address)).toBeGreaterThan(parseEther('0.74'));
  });

  it('refuses bad input with 400 naming the field and changes nothing', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 5_000_000n);
    const to = stranger();
    const ownerBefore = await w.bed.balance(owner.account.address);
    const cases: [unknown, string][] = [
      [{ to: '0x1234', amount: '1' }, 'body.to'],
      [{ to: to.toLowerCase().replace('0x', '0X'), amount: '1' }, 'body.to'],
      [{ to: to.replace(/[a-f]/, (c) => c.toUpperCase()), amount: '1' }, 'body.to'],
      [{ to: '0x0000000000000000000000000000000000000000', amount: '1' }, 'body.to'],
      [{ to, amount: '0' }, 'body.amount'],
      [{ to, amount: '-1' }, 'body.amount'],
      [{ to, amount: '1.0000001' }, 'body.amount'],
      [{ to, amount: 1 }, 'body.amount'],
      [{ to, amount: '1', asset: 'DOGE' }, 'body.asset'],
      [{ amount: '1' }, 'body.to'],
      [{ to: wallet.address, amount: '1' }, 'body.to'],
    ];
    for (const [body, field] of cases) {
      const res = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field, JSON.stringify(body)).toBe(field);
    }
    const notJson = await owner.client.fetch(`${w.url}/v1/wallets/${wallet.address}/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(notJson.status).toBe(400);
    // A foreign wallet: someone else's payment buys no access to it.
    const intruder = await makeOwner(w);
    const intruderBefore = await w.bed.balance(intruder.account.address);
    const foreign = await intruder.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' });
    expect(foreign.status).toBe(403);
    expect(await w.bed.balance(intruder.account.address)).toBe(intruderBefore);
    expect(await w.bed.balance(wallet.address)).toBe(5_000_000n);
    expect(await w.bed.balance(owner.account.address)).toBe(ownerBefore);
    expect(await journalCount(wallet.address)).toEqual({});
  });

  it('refuses to send more than the wallet holds without charging the fee', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    const before = await w.bed.balance(owner.account.address);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to: stranger(), amount: '1.000001' });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: 'insufficient_funds', details: { available: '1.00' } });
    expect(await w.bed.balance(owner.account.address)).toBe(before);
  });

  it('answers the same Idempotency-Key ten times with one transfer and one charge', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 10_000_000n);
    const to = stranger();
    const ownerBefore = await w.bed.balance(owner.account.address);
    const answers: unknown[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await owner.call(
        'POST',
        `/v1/wallets/${wallet.address}/send`,
        { to, amount: '1' },
        { 'idempotency-key': 'pay-rent-2026-03' },
      );
      expect(res.status).toBe(200);
      if (i > 0) expect(res.headers.get('idempotent-replayed')).toBe('true');
      answers.push(res.body);
    }
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(await w.bed.balance(to)).toBe(1_000_000n);
    expect(await w.bed.balance(owner.account.address)).toBe(ownerBefore - 5_000n);
    expect(await journalCount(wallet.address)).toEqual({ confirmed: 1 });
  });

  it('never lets 20 parallel sends exceed maxPerDay', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 100_000_000n);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { maxPerDay: '5.5' });
    const to = stranger();
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' }),
      ),
    );
    const ok = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 422 && r.body.error.code === 'policy_violation').length;
    expect(ok + refused).toBe(20);
    // Each accepted send also paid a 0.005 fee from the same budget: 5 × 1.005 = 5.025 ≤ 5.5 < 6 × 1.005.
    expect(ok).toBe(5);
    expect(await w.bed.balance(to)).toBe(5_000_000n);
    const { rows } = await w.database.pool.query(
      `SELECT coalesce(sum(usdc_value), 0)::text AS spent FROM journal WHERE wallet = $1 AND status <> 'failed' AND counts`,
      [wallet.address],
    );
    expect(BigInt(rows[0].spent)).toBeLessThanOrEqual(5_500_000n);
  });

  it('refuses a paused scope with 409 wallet_paused and works again after resume', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 5_000_000n);
    const to = stranger();
    const paused = await owner.call('POST', `/v1/wallets/${wallet.address}/pause`, { scope: 'send', reason: 'audit' });
    expect(paused.status).toBe(200);
    expect(paused.body.paused).toEqual([expect.objectContaining({ scope: 'send', reason: 'audit', source: 'owner' })]);
    const before = await w.bed.balance(owner.account.address);
    const refused = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'wallet_paused', details: { scope: 'send', reason: 'audit' } });
    expect(await w.bed.balance(owner.account.address)).toBe(before);
    const agentRefused = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, {
      to,
      amount: '1',
    });
    expect(agentRefused.status).toBe(409);
    // Pausing `all` covers every scope.
    await owner.call('POST', `/v1/wallets/${wallet.address}/resume`, { scope: 'send' });
    await owner.call('POST', `/v1/wallets/${wallet.address}/pause`, { scope: 'all', reason: 'holiday' });
    expect((await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' })).status).toBe(409);
    const resumed = await owner.call('POST', `/v1/wallets/${wallet.address}/resume`, { scope: 'all' });
    expect(resumed.body.paused).toEqual([]);
    const sent = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' });
    expect(sent.status).toBe(200);
    expect(await w.bed.balance(to)).toBe(1_000_000n);
  });

  it('trips the breaker after 3 consecutive failed on-chain operations', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 5_000_000n);
    await fundEthTo(w, wallet.address, parseEther('1'));
    // The USDC contract accepts no ETH: each of these sends reverts.
    for (let i = 1; i <= 3; i++) {
      const res = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, {
        to: w.bed.devnet.usdc,
        amount: '0.01',
        asset: 'ETH',
      });
      expect(res.status, `attempt ${i}`).toBe(422);
      expect(res.body.error.code).toBe('transaction_failed');
    }
    const state = await owner.call('GET', `/v1/wallets/${wallet.address}`);
    expect(state.body.safety.paused).toEqual([expect.objectContaining({ scope: 'send', source: 'breaker' })]);
    expect(state.body.safety.breakers).toEqual([
      expect.objectContaining({ scope: 'send', consecutiveFailures: 3, threshold: 3 }),
    ]);
    const refused = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to: stranger(), amount: '1' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.details.pausedBy).toBe('breaker');
    expect(await journalCount(wallet.address)).toEqual({ failed: 3 });
    // The owner resumes; the count starts over.
    await owner.call('POST', `/v1/wallets/${wallet.address}/resume`, { scope: 'send' });
    const to = stranger();
    expect((await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '1' })).status).toBe(200);
    const after = await owner.call('GET', `/v1/wallets/${wallet.address}`);
    expect(after.body.safety.breakers[0].consecutiveFailures).toBe(0);
  });

  it('stops every money movement under the operator kill switch, with a 409 and no charge', async () => {
    const operatorToken = 'operator-token-0123456789abcdef';
    const killed = await startWalletBed({
      shared: { bed: w.bed, uniswap: w.uniswap },
      env: { WALLET_OPERATOR_TOKEN: operatorToken },
    });
    try {
      const { owner, wallet } = await ownedWallet(killed);
      await fund(killed, wallet.address, 5_000_000n);
      const op = (body?: unknown, token = operatorToken) =>
        fetch(`${killed.url}/v1/operator/kill-switch`, {
          method: body ? 'PUT' : 'GET',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
      expect((await op(undefined, 'wrong-token-wrong-token-wrong')).status).toBe(401);
      expect((await op({ engaged: true, reason: 'incident 42' })).status).toBe(200);
      const before = await killed.bed.balance(owner.account.address);
      const refused = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to: stranger(), amount: '1' });
      expect(refused.status).toBe(409);
      expect(refused.body.error.details).toMatchObject({ pausedBy: 'operator', reason: 'incident 42' });
      expect(await killed.bed.balance(owner.account.address)).toBe(before);
      // Agents cannot even spend fees while the switch is on.
      const agent = await agentCall(killed, wallet.agentToken, 'GET', `/v1/wallets/${wallet.address}`);
      expect(agent.status).toBe(409);
      expect(((await fetch(`${killed.url}/v1/health`).then((r) => r.json())) as any).killSwitch.engaged).toBe(true);
      expect((await op({ engaged: false })).status).toBe(200);
      expect(
        (await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to: stranger(), amount: '1' })).status,
      ).toBe(200);
    } finally {
      await killed.stop();
    }
    // Without an operator token the routes are off.
    expect((await fetch(`${w.url}/v1/operator/kill-switch`)).status).toBe(403);
  });
});
