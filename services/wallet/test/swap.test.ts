import { fundUsdc, testUsdcAbi, uniswapV2RouterAbi } from '@agentstack/chain';
import { createWalletClient, http, maxUint256, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentCall, ethBalance, fund, fundEthTo, ownedWallet, startWalletBed, type WalletBed } from './harness.js';

let w: WalletBed;

beforeAll(async () => {
  w = await startWalletBed();
});

afterAll(async () => {
  await w?.stop();
});

afterEach(() => {
  w.hooks.beforeSwapQuote = undefined;
  w.hooks.beforeSwapSend = undefined;
  w.hooks.afterIntent = undefined;
  w.hooks.afterSubmit = undefined;
});

/** Someone else buys ETH with a lot of USDC, moving the pool's price against a USDC→ETH swap. */
async function moveThePrice(usdc: bigint) {
  const trader = privateKeyToAccount(generatePrivateKey());
  await fundUsdc({ rpcUrl: w.bed.devnet.rpcUrl, to: trader.address, amount: usdc });
  await fundEthTo(w, trader.address, parseEther('1'));
  const client = createWalletClient({
    account: trader,
    chain: w.bed.devnet.chain.viemChain,
    transport: http(w.bed.devnet.rpcUrl),
  });
  const wait = async (hash: `0x${string}`) => {
    const receipt = await w.publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new Error('trader transaction failed');
  };
  await wait(
    await client.writeContract({
      address: w.bed.devnet.usdc,
      abi: testUsdcAbi,
      functionName: 'approve',
      args: [w.uniswap.router, maxUint256],
    }),
  );
  const { timestamp } = await w.publicClient.getBlock();
  await wait(
    await client.writeContract({
      address: w.uniswap.router,
      abi: uniswapV2RouterAbi,
      functionName: 'swapExactTokensForETH',
      args: [usdc, 0n, [w.bed.devnet.usdc, w.uniswap.weth], trader.address, timestamp + 600n],
    }),
  );
}

async function quoteUsdcToEth(usdc: bigint) {
  const amounts = await w.publicClient.readContract({
    address: w.uniswap.router,
    abi: uniswapV2RouterAbi,
    functionName: 'getAmountsOut',
    args: [usdc, [w.bed.devnet.usdc, w.uniswap.weth]],
  });
  return amounts[1]!;
}

describe('swap on the real Uniswap V2 contracts', () => {
  it('swaps USDC→ETH for a wallet that starts with 0 ETH: both balances move, at the quoted price', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 100_000_000n);
    expect(await ethBalance(w, wallet.address)).toBe(0n);
    const quoted = await quoteUsdcToEth(25_000_000n);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '25',
      maxSlippageBps: 100,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      kind: 'swap',
      status: 'confirmed',
      from: 'USDC',
      to: 'ETH',
      amountIn: '25.00',
      quotedOutAtomic: quoted.toString(),
      minOutAtomic: ((quoted * 9_900n) / 10_000n).toString(),
      maxSlippageBps: 100,
    });
    const received = await ethBalance(w, wallet.address);
    expect(res.body.amountOutAtomic).toBe(received.toString());
    expect(received).toBe(quoted); // nothing moved the pool in between; the wallet paid no gas
    expect(await w.bed.balance(wallet.address)).toBe(75_000_000n);
    expect(res.body.details.minOut).toBeDefined();
  });

  it('refuses to submit when the price moved past maxSlippageBps, and returns the USDC', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 50_000_000n);
    w.hooks.beforeSwapQuote = () => moveThePrice(200_000_000_000n);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '10',
      maxSlippageBps: 50,
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('slippage_exceeded');
    expect(res.body.error.details.entry).toMatchObject({ status: 'failed', amountOut: null });
    expect(res.body.error.details.entry.details.refunded).toBe(true);
    expect(await w.bed.balance(wallet.address)).toBe(50_000_000n);
    expect(await ethBalance(w, wallet.address)).toBe(0n);
  });

  it('is protected on-chain too: a price move between signing and mining reverts the swap, and the USDC comes back', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 50_000_000n);
    w.hooks.beforeSwapSend = () => moveThePrice(200_000_000_000n);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '10',
      maxSlippageBps: 10,
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('slippage_exceeded');
    expect(res.body.error.details.entry.error).toMatch(/reverted/);
    expect(await w.bed.balance(wallet.address)).toBe(50_000_000n);
    expect(await ethBalance(w, wallet.address)).toBe(0n);
    // The same price move inside a wide tolerance goes through.
    w.hooks.beforeSwapSend = () => moveThePrice(1_000_000_000n);
    const wide = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '10',
      maxSlippageBps: 2_000,
    });
    expect(wide.status).toBe(200);
    expect(BigInt(wide.body.amountOutAtomic)).toBeLessThan(BigInt(wide.body.quotedOutAtomic));
    expect(BigInt(wide.body.amountOutAtomic)).toBeGreaterThanOrEqual(BigInt(wide.body.minOutAtomic));
  });

  it('swaps ETH→USDC signed by the wallet itself (it pays its gas in ETH)', async () => {
    const { wallet } = await ownedWallet(w);
    await fundEthTo(w, wallet.address, parseEther('1'));
    await fund(w, wallet.address, 1_000_000n); // for the agent's route fee
    const res = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'ETH',
      to: 'USDC',
      amount: '0.1',
      maxSlippageBps: 100,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ from: 'ETH', to: 'USDC', amountIn: '0.1', status: 'confirmed', actor: 'agent' });
    const usdcNow = await w.bed.balance(wallet.address);
    expect(usdcNow).toBe(1_000_000n - 10_000n + BigInt(res.body.amountOutAtomic));
    expect(await ethBalance(w, wallet.address)).toBeLessThan(parseEther('0.9'));
  });

  it('counts swaps toward the policy and refuses bad input naming the field', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 20_000_000n);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { maxPerTx: '5' });
    const denied = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '6',
    });
    expect(denied.status).toBe(422);
    expect(denied.body.error.details.rule).toBe('maxPerTx');
    for (const [body, field] of [
      [{ from: 'USDC', to: 'USDC', amount: '1' }, 'body.to'],
      [{ from: 'BTC', to: 'ETH', amount: '1' }, 'body.from'],
      [{ from: 'USDC', to: 'ETH', amount: '0' }, 'body.amount'],
      [{ from: 'USDC', to: 'ETH', amount: '1.0000001' }, 'body.amount'],
      [{ from: 'ETH', to: 'USDC', amount: '0.1000000000000000001' }, 'body.amount'],
      [{ from: 'USDC', to: 'ETH', amount: '1', maxSlippageBps: -1 }, 'body.maxSlippageBps'],
      [{ from: 'USDC', to: 'ETH', amount: '1', maxSlippageBps: 10_001 }, 'body.maxSlippageBps'],
    ] as const) {
      const res = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field, JSON.stringify(body)).toBe(field);
    }
    const pausedFirst = await owner.call('POST', `/v1/wallets/${wallet.address}/pause`, { scope: 'swap' });
    expect(pausedFirst.status).toBe(200);
    const paused = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '1',
    });
    expect(paused.status).toBe(409);
    expect(paused.body.error.code).toBe('wallet_paused');
    expect(await w.bed.balance(wallet.address)).toBe(20_000_000n);
  });
});

describe('interrupted operations are finished by the reconciler, once', () => {
  it('a USDC→ETH swap interrupted after its pull completes on the next pass', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 30_000_000n);
    w.hooks.afterSubmit = async () => {
      throw new Error('simulated crash after the pull was submitted');
    };
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/swap`, {
      from: 'USDC',
      to: 'ETH',
      amount: '10',
    });
    w.hooks.afterSubmit = undefined;
    expect(res.status).toBe(500);
    expect(await w.bed.balance(wallet.address)).toBe(20_000_000n); // pulled, not yet swapped
    expect(await ethBalance(w, wallet.address)).toBe(0n);
    await w.service.tick();
    const { rows } = await w.database.pool.query(
      `SELECT status, details FROM journal WHERE wallet = $1 AND kind = 'swap'`,
      [wallet.address],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].status).toBe('confirmed');
    expect(await ethBalance(w, wallet.address)).toBe(BigInt(rows[0].details.amountOut));
    await w.service.tick();
    expect(await w.bed.balance(wallet.address)).toBe(20_000_000n);
  });

  it('an ETH send interrupted before broadcast is re-broadcast byte for byte', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fundEthTo(w, wallet.address, parseEther('1'));
    const to = privateKeyToAccount(generatePrivateKey()).address;
    w.hooks.afterIntent = async () => {
      throw new Error('simulated crash before broadcast');
    };
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/send`, { to, amount: '0.1', asset: 'ETH' });
    w.hooks.afterIntent = undefined;
    expect(res.status).toBe(500);
    expect(await ethBalance(w, to)).toBe(0n);
    const before = await w.database.pool.query(
      `SELECT status, tx_hash FROM journal WHERE wallet = $1 AND kind = 'send'`,
      [wallet.address],
    );
    expect(before.rows[0].status).toBe('intent');
    await w.service.tick();
    const after = await w.database.pool.query(
      `SELECT status, tx_hash FROM journal WHERE wallet = $1 AND kind = 'send'`,
      [wallet.address],
    );
    expect(after.rows[0]).toEqual({ status: 'confirmed', tx_hash: before.rows[0].tx_hash });
    expect(await ethBalance(w, to)).toBe(parseEther('0.1'));
  });
});
