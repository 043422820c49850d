import { newId, utcDay } from '@agentstack/core';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireFundRequests } from '../src/funding.js';
import { InstanceLock } from '../src/instance.js';
import { reserve } from '../src/reserve.js';
import { migrateWalletDatabase } from '../src/service.js';
import { store } from '../src/store.js';
import { createWallet, fund, ownedWallet, startWalletBed, type WalletBed } from './harness.js';

/**
 * The database side of wallet.sh on its own (CI runs this file against PostgreSQL 15 as well as the
 * embedded 18): migrations, the per-wallet lock under concurrency, SKIP LOCKED sweeps, executor liveness.
 */
let w: WalletBed;

beforeAll(async () => {
  w = await startWalletBed();
});

afterAll(async () => {
  await w?.stop();
});

describe('migrations', () => {
  it('apply once: running them again changes nothing', async () => {
    await migrateWalletDatabase(w.database.url);
    const { rows } = await w.database.pool.query(
      `SELECT (SELECT count(*) FROM schema_migrations)::int AS wallet,
              (SELECT count(*) FROM x402_schema_migrations)::int AS x402,
              (SELECT count(*) FROM webhooks_schema_migrations)::int AS webhooks`,
    );
    expect(rows[0]).toEqual({ wallet: 1, x402: 1, webhooks: 1 });
  });
});

describe('reserve (policy decision + journal intent in one transaction under the wallet lock)', () => {
  it('never lets concurrent reservations exceed maxPerDay', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 100_000_000n);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { maxPerDay: '7' });
    const to = privateKeyToAccount(generatePrivateKey()).address.toLowerCase();
    const attempt = () =>
      reserve(w.service.ctx, {
        wallet: wallet.address,
        kind: 'send',
        scope: 'send',
        direction: 'out',
        asset: 'USDC',
        amount: 1_000_000n,
        usdcValue: 1_000_000n,
        usdcOut: 1_000_000n,
        counterparty: to,
        method: 'external3009',
        actor: 'owner',
        caller: owner.account.address,
        feeSettled: true,
        policy: true,
      }).then(
        () => 'ok',
        (err: { code?: string }) => err.code ?? 'error',
      );
    const results = await Promise.all(Array.from({ length: 30 }, attempt));
    expect(results.filter((r) => r === 'ok')).toHaveLength(7);
    expect(results.filter((r) => r === 'policy_violation')).toHaveLength(23);
    const usage = await store.usage(w.service.ctx.db, wallet.address, utcDay(new Date()), { recipient: to });
    expect(usage.today).toBe(7_000_000n);
    expect(usage.recipientToday).toBe(7_000_000n);
  });

  it('counts USDC in flight against the balance: concurrent reservations cannot overspend it', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 3_500_000n);
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        reserve(w.service.ctx, {
          wallet: wallet.address,
          kind: 'send',
          scope: 'send',
          direction: 'out',
          asset: 'USDC',
          amount: 1_000_000n,
          usdcValue: 1_000_000n,
          usdcOut: 1_000_000n,
          counterparty: owner.account.address.toLowerCase(),
          method: 'external3009',
          actor: 'owner',
          caller: owner.account.address,
          feeSettled: true,
          policy: true,
        }).then(
          () => 'ok',
          (err: { code?: string }) => err.code ?? 'error',
        ),
      ),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(3);
    expect(results.filter((r) => r === 'insufficient_funds')).toHaveLength(7);
  });
});

describe('sweeps and executors across replicas', () => {
  it('expires each funding request exactly once when several sweepers run at once', async () => {
    const { wallet } = await ownedWallet(w);
    const row = await store.getWallet(w.service.ctx.db, wallet.address);
    const past = new Date(Date.now() - 1_000);
    for (let i = 0; i < 12; i++) {
      await store.insertFundRequest(w.service.ctx.db, {
        id: newId('fr'),
        wallet: wallet.address,
        owner: row!.owner!,
        amount: 1_000n,
        reason: `r${i}`,
        status: 'pending',
        requested_by: 'agent',
        created_at: new Date(past.getTime() - 1_000),
        expires_at: past,
      });
    }
    const counts = await Promise.all([1, 2, 3].map(() => expireFundRequests(w.service.ctx, 5)));
    const again = await expireFundRequests(w.service.ctx, 100);
    const total = counts.reduce((a, b) => a + b, 0) + again;
    expect(total).toBe(12);
    const { rows } = await w.database.pool.query(
      `SELECT status, count(*)::int AS n FROM fund_requests WHERE wallet = $1 GROUP BY status`,
      [wallet.address],
    );
    expect(rows).toEqual([{ status: 'expired', n: 12 }]);
  });

  it('knows a live executor from a dead one through its advisory lock', async () => {
    const other = await InstanceLock.acquire(w.database.pool);
    expect(await w.service.ctx.instance.isAlive(other.key)).toBe(true);
    await other.release();
    expect(await w.service.ctx.instance.isAlive(other.key)).toBe(false);
  });

  it('hands an entry to one taker only (compare-and-set on its executor)', async () => {
    const wallet = await createWallet(w);
    const now = new Date();
    const entry = await store.insertEntry(w.service.ctx.db, {
      id: newId('jr'),
      wallet: wallet.address,
      kind: 'fee',
      direction: 'out',
      asset: 'USDC',
      amount: '1000',
      usdc_value: 1_000n,
      counts: true,
      status: 'submitted',
      method: 'external3009',
      steps: '[]',
      details: '{}',
      actor: 'agent',
      caller: wallet.address,
      executor: 42n,
      fee_settled: true,
      usage_day: utcDay(now),
      created_at: now,
      updated_at: now,
    });
    const takers = await Promise.all(
      [1n, 2n, 3n, 4n].map((me) => store.takeEntry(w.service.ctx.db, entry.id, 42n, me)),
    );
    expect(takers.filter(Boolean)).toHaveLength(1);
  });
});
