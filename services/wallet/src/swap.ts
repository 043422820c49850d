import { testUsdcAbi, uniswapV2PairAbi, uniswapV2RouterAbi } from '@agentstack/chain';
import { AppError, formatUsdc, invalidRequest, upstreamUnavailable } from '@agentstack/core';
import {
  type Address,
  encodeFunctionData,
  type Hash,
  type Hex,
  maxUint256,
  parseEventLogs,
  type TransactionReceipt,
} from 'viem';
import { ChainError } from './chain.js';
import type { Ctx } from './context.js';
import type { JournalRow, SwapStep, WalletRow } from './db.js';
import { markConfirmed, markFailed } from './execute.js';
import type { Reservation } from './reserve.js';
import { ethValue, prepareWalletTx, signUsdcTransfer } from './send.js';
import { store } from './store.js';
import { entryView, formatEth } from './views.js';

/**
 * USDC→ETH for a wallet that may hold no ETH at all, in journaled steps:
 *   pull    the wallet's EIP-3009 authorization moves the USDC to the service's gas account;
 *   swap    the gas account swaps on the router with the quoted minimum and deadline, ETH going straight
 *           to the wallet;
 *   refund  if the swap cannot happen (price moved past the slippage limit, deadline passed, revert), the
 *           USDC goes back to the wallet.
 * Every step's transaction is recorded before it is sent, so a restart picks up exactly where it stopped.
 */
export interface SwapDetails {
  direction: 'USDC->ETH' | 'ETH->USDC';
  path: Address[];
  quotedOut: string;
  minOut: string;
  deadline: string;
  maxSlippageBps: number;
  fromBlock?: string;
  amountOut?: string;
  refunded?: boolean;
}

const nowSeconds = (ctx: Ctx) => BigInt(Math.floor(ctx.clock.now().getTime() / 1000));

async function saveSteps(ctx: Ctx, entry: JournalRow, steps: SwapStep[], extra: Partial<JournalRow> = {}) {
  const now = ctx.clock.now();
  return (
    (await store.updateEntry(
      ctx.db,
      entry.id,
      {
        steps: JSON.stringify(steps),
        ...(extra.status ? { status: extra.status } : {}),
        ...(extra.tx_hash ? { tx_hash: extra.tx_hash } : {}),
        ...(extra.status === 'submitted' ? { submitted_at: now } : {}),
      },
      now,
    )) ?? entry
  );
}

/** Output of the pool's Swap event in a receipt (the amount the wallet received). */
export function swapOutput(receipt: TransactionReceipt): bigint | undefined {
  const swaps = parseEventLogs({ abi: uniswapV2PairAbi, logs: receipt.logs, eventName: 'Swap' });
  const last = swaps[swaps.length - 1];
  return last ? last.args.amount0Out + last.args.amount1Out : undefined;
}

async function ensureRouterAllowance(ctx: Ctx, router: Address, amount: bigint): Promise<void> {
  if (ctx.gateway.routerApproved) return;
  const allowance = await ctx.gateway.client.readContract({
    address: ctx.gateway.usdc,
    abi: testUsdcAbi,
    functionName: 'allowance',
    args: [ctx.gateway.relayer.address, router],
  });
  if (allowance >= amount && allowance > maxUint256 / 2n) {
    ctx.gateway.routerApproved = true;
    return;
  }
  const approve = await ctx.gateway.relay({
    to: ctx.gateway.usdc,
    data: encodeFunctionData({ abi: testUsdcAbi, functionName: 'approve', args: [router, maxUint256] }),
  });
  const receipt = await ctx.gateway.waitForReceipt(approve.hash, 60_000);
  if (receipt?.status !== 'success') throw new ChainError('approving the router failed', 'approve_failed', 'rejected');
  ctx.gateway.routerApproved = true;
}

/** Sends one recorded relayer step and waits; a step recorded earlier is re-broadcast byte for byte. */
async function sendStep(ctx: Ctx, step: SwapStep, waitMs: number) {
  try {
    await ctx.gateway.broadcast(step.raw as Hex);
  } catch (err) {
    if (!(err instanceof ChainError) || err.kind === 'unavailable') throw err;
    // Refused (e.g. its nonce went to another transaction): it never ran.
    return { receipt: undefined, dropped: true };
  }
  return { receipt: await ctx.gateway.waitForReceipt(step.hash as Hash, waitMs), dropped: false };
}

async function refund(
  ctx: Ctx,
  entry: JournalRow,
  steps: SwapStep[],
  reason: string,
  onChain: boolean,
  waitMs: number,
) {
  let refundStep = steps.find((s) => s.stage === 'refund');
  if (!refundStep) {
    const signed = await ctx.gateway.signTx(ctx.gateway.relayer, {
      to: ctx.gateway.usdc,
      data: encodeFunctionData({
        abi: testUsdcAbi,
        functionName: 'transfer',
        args: [entry.wallet as Address, BigInt(entry.amount)],
      }),
    });
    refundStep = { stage: 'refund', hash: signed.hash, raw: signed.raw };
    steps.push(refundStep);
    const now = ctx.clock.now();
    entry =
      (await store.updateEntry(
        ctx.db,
        entry.id,
        { steps: JSON.stringify(steps), details: JSON.stringify({ ...entry.details, refundReason: reason }) },
        now,
      )) ?? entry;
  }
  let receipt = await ctx.gateway.receipt(refundStep.hash as Hash);
  if (!receipt) {
    const sent = await sendStep(ctx, refundStep, waitMs);
    receipt = sent.receipt;
    if (sent.dropped) {
      // Sign it again with a fresh nonce on the next pass.
      steps.splice(steps.indexOf(refundStep), 1);
      await saveSteps(ctx, entry, steps);
      return entry;
    }
  }
  if (!receipt) return entry;
  if (receipt.status !== 'success') {
    ctx.log.error({ entry: entry.id }, 'swap refund reverted; will retry');
    steps.splice(steps.indexOf(refundStep), 1);
    await saveSteps(ctx, entry, steps);
    return entry;
  }
  const why = String(entry.details.refundReason ?? reason);
  return markFailed(ctx, entry, `${why}; the USDC was returned to the wallet`, {
    onChain,
    details: { refunded: true, refundTx: refundStep.hash },
  });
}

export async function runSwap(
  ctx: Ctx,
  entry: JournalRow,
  waitMs: number,
  { reconciling = false }: { reconciling?: boolean } = {},
): Promise<JournalRow> {
  const details = entry.details as unknown as SwapDetails;
  const auth = entry.auth!;
  const steps: SwapStep[] = [...entry.steps];
  let current = entry;

  // 1. Pull the USDC in.
  let pull = steps.find((s) => s.stage === 'pull');
  if (!pull?.done) {
    const used = await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex);
    if (!used) {
      if (pull && reconciling) {
        const receipt = await ctx.gateway.receipt(pull.hash as Hash);
        if (receipt?.status === 'reverted') {
          return markFailed(ctx, current, 'pulling the USDC reverted', { onChain: true });
        }
      }
      if (BigInt(auth.validBefore) <= nowSeconds(ctx)) {
        return markFailed(ctx, current, 'the swap deadline passed before the USDC was pulled; nothing moved', {
          onChain: false,
        });
      }
      if (reconciling && !current.fee_settled) {
        return markFailed(ctx, current, 'interrupted before the route fee settled; nothing was sent', {
          onChain: false,
        });
      }
      if (!pull || reconciling) {
        if (ctx.hooks.afterIntent) await ctx.hooks.afterIntent(current.id);
        let hash: Hash;
        try {
          hash = (
            await ctx.gateway.relay({ to: ctx.gateway.usdc, data: ctx.gateway.transferWithAuthorizationData(auth) })
          ).hash;
        } catch (err) {
          if (err instanceof ChainError && err.kind !== 'unavailable') {
            return markFailed(ctx, current, `pulling the USDC failed: ${err.reason}`, { onChain: true });
          }
          throw upstreamUnavailable('the chain is not reachable right now; the swap is journaled and will be retried');
        }
        if (pull) pull.hash = hash;
        else {
          pull = { stage: 'pull', hash };
          steps.push(pull);
        }
        current = await saveSteps(ctx, current, steps, { status: 'submitted', tx_hash: hash });
        if (ctx.hooks.afterSubmit) await ctx.hooks.afterSubmit(current.id);
      }
      const receipt = await ctx.gateway.waitForReceipt(pull.hash as Hash, waitMs);
      if (!receipt) return current;
      if (
        receipt.status !== 'success' &&
        !(await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex))
      ) {
        return markFailed(ctx, current, 'pulling the USDC reverted', { onChain: true });
      }
    }
    if (!pull) {
      pull = { stage: 'pull', hash: current.tx_hash ?? '' };
      steps.push(pull);
    }
    pull.done = true;
    current = await saveSteps(ctx, current, steps, { status: 'submitted' });
  }

  // 3. A refund already under way finishes first.
  if (steps.some((s) => s.stage === 'refund')) return refund(ctx, current, steps, 'refund', false, waitMs);

  // 2. Swap.
  const { router } = await ctx.gateway.uniswap();
  let swap = steps.find((s) => s.stage === 'swap');
  if (swap) {
    const receipt = await ctx.gateway.receipt(swap.hash as Hash);
    if (receipt?.status === 'success') return confirmSwap(ctx, current, receipt);
    if (receipt?.status === 'reverted') return refund(ctx, current, steps, 'the swap reverted', true, waitMs);
    // Not mined: re-broadcast the recorded bytes (or learn that its nonce went elsewhere: it never ran).
    const sent = await sendStep(ctx, swap, waitMs);
    if (sent.dropped) return refund(ctx, current, steps, 'the swap transaction was dropped', false, waitMs);
    if (!sent.receipt) return current;
    if (sent.receipt.status === 'success') return confirmSwap(ctx, current, sent.receipt);
    return refund(ctx, current, steps, 'the swap reverted (price moved past maxSlippageBps or deadline)', true, waitMs);
  }

  if (ctx.hooks.beforeSwapQuote) await ctx.hooks.beforeSwapQuote();
  const amountIn = BigInt(current.amount);
  const minOut = BigInt(details.minOut);
  const deadline = BigInt(details.deadline);
  if (nowSeconds(ctx) >= deadline) return refund(ctx, current, steps, 'the swap deadline passed', false, waitMs);
  const fresh = await ctx.gateway.quote(amountIn, details.path);
  if (fresh < minOut) {
    return refund(
      ctx,
      current,
      steps,
      `the price moved: ${fresh} wei now, below the minimum ${minOut} allowed by maxSlippageBps ${details.maxSlippageBps}`,
      false,
      waitMs,
    );
  }
  await ensureRouterAllowance(ctx, router, amountIn);
  let signed: Awaited<ReturnType<typeof ctx.gateway.signTx>>;
  try {
    signed = await ctx.gateway.signTx(ctx.gateway.relayer, {
      to: router,
      data: encodeFunctionData({
        abi: uniswapV2RouterAbi,
        functionName: 'swapExactTokensForETH',
        args: [amountIn, minOut, details.path, current.wallet as Address, deadline],
      }),
    });
  } catch (err) {
    if (err instanceof ChainError && err.kind === 'reverted') {
      return refund(ctx, current, steps, `the swap would revert: ${err.reason}`, false, waitMs);
    }
    throw err;
  }
  swap = { stage: 'swap', hash: signed.hash, raw: signed.raw };
  steps.push(swap);
  current = await saveSteps(ctx, current, steps, { tx_hash: signed.hash });
  if (ctx.hooks.beforeSwapSend) await ctx.hooks.beforeSwapSend();
  const sent = await sendStep(ctx, swap, waitMs);
  if (sent.dropped) return refund(ctx, current, steps, 'the swap transaction was refused', false, waitMs);
  if (!sent.receipt) return current;
  if (sent.receipt.status === 'success') return confirmSwap(ctx, current, sent.receipt);
  return refund(ctx, current, steps, 'the swap reverted (price moved past maxSlippageBps or deadline)', true, waitMs);
}

function confirmSwap(ctx: Ctx, entry: JournalRow, receipt: TransactionReceipt) {
  const out = swapOutput(receipt);
  return markConfirmed(ctx, entry, receipt.transactionHash, {
    ...(out !== undefined ? { amountOut: out.toString() } : {}),
    blockNumber: receipt.blockNumber.toString(),
  });
}

/**
 * A swap as a reservation: quoted now, with its minimum output (`maxSlippageBps` below the quote) and deadline
 * fixed before anything is signed. USDC→ETH is authorized to the service's gas account (no ETH needed);
 * ETH→USDC is a router call the wallet signs and pays gas for.
 */
export async function swapReservation(
  ctx: Ctx,
  input: {
    wallet: WalletRow;
    from: 'USDC' | 'ETH';
    amount: bigint;
    maxSlippageBps: number;
    deadlineSeconds?: number;
    actor: 'owner' | 'agent';
    caller: string;
    idempotencyRef?: string;
  },
): Promise<Reservation> {
  const { wallet, amount } = input;
  let router: Address;
  let weth: Address;
  try {
    ({ router, weth } = await ctx.gateway.uniswap());
  } catch (err) {
    if (err instanceof ChainError) throw upstreamUnavailable(`swaps are unavailable: ${err.message}`);
    throw err;
  }
  const usdcIn = input.from === 'USDC';
  const path = usdcIn ? [ctx.gateway.usdc, weth] : [weth, ctx.gateway.usdc];
  let quoted: bigint;
  try {
    quoted = await ctx.gateway.quote(amount, path);
  } catch (err) {
    throw new AppError('swap_unavailable', `no quote for this swap: ${(err as Error).message.slice(0, 200)}`, 422, {
      field: 'body.amount',
    });
  }
  const minOut = (quoted * BigInt(10_000 - input.maxSlippageBps)) / 10_000n;
  if (minOut === 0n) throw invalidRequest('amount is too small to swap', 'body.amount');
  const deadlineSeconds = BigInt(input.deadlineSeconds ?? ctx.settings.swapDeadlineSeconds);
  const deadline = nowSeconds(ctx) + deadlineSeconds;
  const details: Record<string, unknown> = {
    direction: usdcIn ? 'USDC->ETH' : 'ETH->USDC',
    path,
    quotedOut: quoted.toString(),
    minOut: minOut.toString(),
    deadline: deadline.toString(),
    maxSlippageBps: input.maxSlippageBps,
  } satisfies SwapDetails;
  const account = ctx.keys.account(wallet.address, wallet.sealed_key);
  const common = {
    wallet: wallet.address,
    kind: 'swap' as const,
    scope: 'swap' as const,
    direction: 'out' as const,
    amount,
    counterparty: router.toLowerCase(),
    actor: input.actor,
    caller: input.caller,
    ...(input.idempotencyRef ? { idempotencyRef: input.idempotencyRef } : {}),
    feeSettled: false,
    policy: true,
  };
  if (usdcIn) {
    return {
      ...common,
      asset: 'USDC',
      usdcValue: amount,
      usdcOut: amount,
      method: 'swap',
      prepare: async () => ({
        auth: await signUsdcTransfer(ctx, account, ctx.gateway.relayer.address, amount, deadlineSeconds),
        details: { ...details, fromBlock: (await ctx.gateway.recentBlock()).toString() },
      }),
    };
  }
  const data = encodeFunctionData({
    abi: uniswapV2RouterAbi,
    functionName: 'swapExactETHForTokens',
    args: [minOut, path, wallet.address as Address, deadline],
  });
  return {
    ...common,
    asset: 'ETH',
    usdcValue: await ethValue(ctx, wallet, amount),
    usdcOut: 0n,
    method: 'rawtx',
    prepare: (trx) => prepareWalletTx(ctx, trx, wallet, account, { to: router, value: amount, data }, details),
  };
}

/** A swap's journal entry as the API shows it, with the quote, the minimum and what came out. */
export async function swapView(ctx: Ctx, entry: JournalRow) {
  const details = entry.details as unknown as SwapDetails;
  let out = details.amountOut !== undefined ? BigInt(details.amountOut) : undefined;
  if (out === undefined && entry.status === 'confirmed' && entry.tx_hash) {
    const receipt = await ctx.gateway.receipt(entry.tx_hash as Hash);
    out = receipt ? swapOutput(receipt) : undefined;
  }
  const fmtOut = (v: bigint) => (details.direction === 'USDC->ETH' ? formatEth(v) : formatUsdc(v));
  const from = details.direction === 'USDC->ETH' ? 'USDC' : 'ETH';
  const base = entryView(entry);
  return {
    ...base,
    from,
    to: from === 'USDC' ? 'ETH' : 'USDC',
    amountIn: base.amount,
    amountInAtomic: entry.amount,
    quotedOut: fmtOut(BigInt(details.quotedOut)),
    quotedOutAtomic: details.quotedOut,
    minOut: fmtOut(BigInt(details.minOut)),
    minOutAtomic: details.minOut,
    amountOut: out === undefined ? null : fmtOut(out),
    amountOutAtomic: out === undefined ? null : out.toString(),
    maxSlippageBps: details.maxSlippageBps,
  };
}
