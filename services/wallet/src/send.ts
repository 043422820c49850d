import { randomNonce, signTransferAuthorization } from '@agentstack/chain';
import { upstreamUnavailable } from '@agentstack/core';
import { policyFromJson } from '@agentstack/sdk/policy';
import type { Transaction } from 'kysely';
import type { Address, LocalAccount } from 'viem';
import { ChainError } from './chain.js';
import type { Ctx } from './context.js';
import type { Asset, StoredAuthorization, WalletDB, WalletRow } from './db.js';
import { insufficientFunds } from './errors.js';
import type { Prepared, Reservation } from './reserve.js';
import { store } from './store.js';
import { formatEth } from './views.js';

/** How long a send's EIP-3009 authorization stays valid (the reconciler can still complete it within this). */
const AUTHORIZATION_TTL_SECONDS = 3600n;

/** Signs an EIP-3009 transfer of the wallet's USDC (no ETH needed: the service's gas account submits it). */
export async function signUsdcTransfer(
  ctx: Ctx,
  account: LocalAccount,
  to: Address,
  value: bigint,
  ttlSeconds = AUTHORIZATION_TTL_SECONDS,
): Promise<StoredAuthorization> {
  const now = BigInt(Math.floor(ctx.clock.now().getTime() / 1000));
  const message = { to, value, validAfter: 0n, validBefore: now + ttlSeconds, nonce: randomNonce() };
  const signed = await signTransferAuthorization({
    account,
    chain: { id: ctx.gateway.chain.id },
    token: ctx.gateway.chain.usdc,
    ...message,
  });
  return {
    from: account.address,
    to,
    value: value.toString(),
    validAfter: '0',
    validBefore: message.validBefore.toString(),
    nonce: message.nonce,
    signature: signed.signature,
  };
}

/**
 * A transaction the managed wallet signs itself (ETH sends, ETH→USDC swaps), prepared under the wallet lock:
 * it pays its own gas in ETH, so the balance net of what is in flight must cover value + gas; the nonce follows
 * both the chain and the wallet's own unsent entries. A call the chain would revert is journaled as failed.
 */
export async function prepareWalletTx(
  ctx: Ctx,
  trx: Transaction<WalletDB>,
  wallet: WalletRow,
  account: LocalAccount,
  request: { to: Address; value: bigint; data?: `0x${string}` },
  details: Record<string, unknown>,
): Promise<Prepared> {
  const [balance, pending, chainNonce, journalNonce] = await Promise.all([
    ctx.gateway.ethBalance(wallet.address as Address),
    store.pendingOutgoing(trx, wallet.address, 'ETH'),
    ctx.gateway.pendingNonce(wallet.address as Address),
    store.maxPendingNonce(trx, wallet.address),
  ]);
  const gas = await ctx.gateway.maxGasCost(wallet.address as Address, request);
  if (balance - pending < request.value + gas) {
    throw insufficientFunds(
      'ETH',
      formatEth(balance - pending > 0n ? balance - pending : 0n),
      formatEth(request.value + gas),
      'a transaction the wallet signs pays its own gas in ETH; USDC sends and USDC→ETH swaps need no ETH',
    );
  }
  const nonce = Math.max(chainNonce, (journalNonce ?? -1) + 1);
  try {
    const signed = await ctx.gateway.signTx(account, request, nonce);
    return { rawTx: signed.raw, txHash: signed.hash, details: { ...details, nonce: signed.nonce } };
  } catch (err) {
    if (err instanceof ChainError && err.kind === 'reverted') return { failure: err.reason, details };
    throw err;
  }
}

/** Whether any numeric limit of the policy would need ETH valued in USDC. */
function hasLimits(wallet: WalletRow): boolean {
  const p = policyFromJson(wallet.policy);
  return (
    p.maxPerTx !== null ||
    p.maxPerDay !== null ||
    p.maxPerRecipientPerDay !== null ||
    Object.keys(p.recipientCaps).length > 0
  );
}

/** ETH valued in USDC for the policy; refuses when a limit applies and no price can be read. */
export async function ethValue(ctx: Ctx, wallet: WalletRow, wei: bigint): Promise<bigint> {
  const value = await ctx.gateway.ethToUsdc(wei);
  if (value !== undefined) return value;
  if (hasLimits(wallet)) {
    throw upstreamUnavailable(
      'ETH cannot be valued in USDC right now (no swap router price), so the policy limits cannot be applied',
    );
  }
  return 0n;
}

/**
 * A send (or an owner's sweep) as a reservation: USDC by a relayed EIP-3009 authorization, ETH by a raw
 * transaction the wallet signs (it pays its own gas in ETH). Signing happens under the wallet lock.
 */
export async function sendReservation(
  ctx: Ctx,
  input: {
    wallet: WalletRow;
    to: Address;
    asset: Asset;
    amount: bigint;
    kind: 'send' | 'sweep';
    actor: 'owner' | 'agent';
    caller: string;
    idempotencyRef?: string;
  },
): Promise<Reservation> {
  const { wallet, to, amount } = input;
  const account = ctx.keys.account(wallet.address, wallet.sealed_key);
  const base = {
    wallet: wallet.address,
    kind: input.kind,
    scope: input.kind === 'sweep' ? null : ('send' as const),
    direction: 'out' as const,
    amount,
    counterparty: to.toLowerCase(),
    actor: input.actor,
    caller: input.caller,
    ...(input.idempotencyRef ? { idempotencyRef: input.idempotencyRef } : {}),
    feeSettled: false,
    policy: input.kind === 'send',
  };
  if (input.asset === 'USDC') {
    return {
      ...base,
      asset: 'USDC',
      usdcValue: amount,
      usdcOut: amount,
      method: 'relay3009',
      prepare: async () => ({
        auth: await signUsdcTransfer(ctx, account, to, amount),
        details: { to, fromBlock: (await ctx.gateway.recentBlock()).toString() },
      }),
    };
  }
  const usdcValue = input.kind === 'send' ? await ethValue(ctx, wallet, amount) : 0n;
  return {
    ...base,
    asset: 'ETH',
    usdcValue,
    usdcOut: 0n,
    method: 'rawtx',
    prepare: (trx) =>
      prepareWalletTx(ctx, trx, wallet, account, { to, value: amount }, { to, valueUsdc: usdcValue.toString() }),
  };
}

/**
 * A whole send outside HTTP (library use, benchmarks): the policy decision and journal intent, then the
 * relay and receipt, as the route does after its fee settled.
 */
export async function sendNow(
  ctx: Ctx,
  input: {
    wallet: WalletRow;
    to: Address;
    asset: Asset;
    amount: bigint;
    actor: 'owner' | 'agent';
    caller: string;
    idempotencyRef?: string;
  },
) {
  const { reserve } = await import('./reserve.js');
  const { execute, release } = await import('./execute.js');
  const { entry } = await reserve(ctx, {
    ...(await sendReservation(ctx, { ...input, kind: 'send' })),
    feeSettled: true,
  });
  try {
    return await execute(ctx, entry);
  } finally {
    await release(ctx, entry);
  }
}
