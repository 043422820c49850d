import { upstreamUnavailable } from '@agentstack/core';
import type { Address, Hash, Hex } from 'viem';
import { countFailure } from './breaker.js';
import { ChainError } from './chain.js';
import type { Ctx } from './context.js';
import type { JournalRow } from './db.js';
import { type OpScope, store } from './store.js';
import { runSwap } from './swap.js';

/** The pausable scope an entry's failures count against. */
export function scopeOf(entry: Pick<JournalRow, 'kind'>): OpScope | null {
  if (entry.kind === 'send' || entry.kind === 'sweep' || entry.kind === 'fund') return 'send';
  if (entry.kind === 'swap') return 'swap';
  if (entry.kind === 'pay') return 'pay';
  return null;
}

const json = (value: unknown) => JSON.stringify(value);

export async function markSubmitted(ctx: Ctx, entry: JournalRow, hash: Hash | string): Promise<JournalRow> {
  const now = ctx.clock.now();
  return (
    (await store.updateEntry(ctx.db, entry.id, { status: 'submitted', tx_hash: hash, submitted_at: now }, now, {
      statusIn: ['intent', 'submitted'],
    })) ?? entry
  );
}

export async function markConfirmed(
  ctx: Ctx,
  entry: JournalRow,
  hash: string | null,
  details: Record<string, unknown> = {},
): Promise<JournalRow> {
  const updated = await store.confirmEntry(
    ctx.db,
    entry.id,
    { txHash: hash, details: json({ ...entry.details, ...details }) },
    ctx.clock.now(),
    scopeOf(entry),
  );
  return updated ?? (await store.getEntry(ctx.db, entry.id)) ?? entry;
}

/**
 * Final failure. `onChain` failures (a revert, a transaction the node refused, a payment the receiver could
 * not settle) count toward the wallet's breaker for that scope; N in a row pause the scope by themselves.
 */
export async function markFailed(
  ctx: Ctx,
  entry: JournalRow,
  reason: string,
  { onChain, details = {} }: { onChain: boolean; details?: Record<string, unknown> },
): Promise<JournalRow> {
  const now = ctx.clock.now();
  const updated = await store.updateEntry(
    ctx.db,
    entry.id,
    {
      status: 'failed',
      error: reason.slice(0, 500),
      details: json({ ...entry.details, ...details }),
      executor: null,
      finished_at: now,
    },
    now,
    { statusIn: ['intent', 'submitted'] },
  );
  const scope = scopeOf(entry);
  if (updated && onChain && scope) await countFailure(ctx, entry.wallet, scope, reason);
  return updated ?? (await store.getEntry(ctx.db, entry.id)) ?? entry;
}

/** Gives an entry back to the reconciler (executor NULL) once this request stops driving it. */
export async function release(ctx: Ctx, entry: JournalRow): Promise<void> {
  // Final entries were released when they became final.
  if (entry.status === 'confirmed' || entry.status === 'failed') return;
  await ctx.db
    .updateTable('journal')
    .set({ executor: null })
    .where('id', '=', entry.id)
    .where('executor', '=', ctx.instance.key)
    .execute();
}

/** The transaction that used an entry's authorization, found on-chain. */
async function confirmFromChain(ctx: Ctx, entry: JournalRow): Promise<JournalRow> {
  const auth = entry.auth!;
  let hash: string | null = null;
  if (entry.tx_hash) {
    const receipt = await ctx.gateway.receipt(entry.tx_hash as Hash);
    if (receipt?.status === 'success') hash = entry.tx_hash;
  }
  if (!hash) {
    const from = BigInt((entry.details.fromBlock as string | undefined) ?? '0');
    hash = (await ctx.gateway.findAuthorizationUse(auth.from as Address, auth.nonce as Hex, from)) ?? null;
  }
  return markConfirmed(ctx, entry, hash);
}

async function pauseAt(ctx: Ctx, point: 'afterIntent' | 'afterSubmit', entryId: string) {
  const hook = ctx.hooks[point];
  if (hook) await hook(entryId);
}

/** USDC moved by an EIP-3009 authorization that the service's gas account submits (the wallet needs no ETH). */
async function runRelay(ctx: Ctx, entry: JournalRow, waitMs: number, { resumed = false } = {}): Promise<JournalRow> {
  let current = entry;
  const auth = current.auth!;
  if (current.status === 'intent' || !current.tx_hash) {
    await pauseAt(ctx, 'afterIntent', current.id);
    // A fresh authorization cannot have been used yet; one picked up again might have been.
    if (resumed && (await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex))) {
      return confirmFromChain(ctx, current);
    }
    if (BigInt(auth.validBefore) <= BigInt(Math.floor(ctx.clock.now().getTime() / 1000))) {
      return markFailed(ctx, current, 'the authorization expired before it was sent', { onChain: false });
    }
    let hash: Hash;
    try {
      hash = (await ctx.gateway.relay({ to: ctx.gateway.usdc, data: ctx.gateway.transferWithAuthorizationData(auth) }))
        .hash;
    } catch (err) {
      if (err instanceof ChainError && err.kind !== 'unavailable') {
        return markFailed(ctx, current, err.reason, { onChain: true });
      }
      ctx.log.warn({ err, entry: current.id }, 'relay failed; the reconciler will retry');
      throw upstreamUnavailable('the chain is not reachable right now; the transfer is journaled and will be retried');
    }
    current = await markSubmitted(ctx, current, hash);
    await pauseAt(ctx, 'afterSubmit', current.id);
  }
  const receipt = await ctx.gateway.waitForReceipt(current.tx_hash as Hash, waitMs);
  if (!receipt) return current;
  if (receipt.status === 'success')
    return markConfirmed(ctx, current, current.tx_hash, { blockNumber: receipt.blockNumber.toString() });
  if (await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex))
    return confirmFromChain(ctx, current);
  return markFailed(ctx, current, 'the transaction reverted', { onChain: true });
}

/** A transaction signed by the managed wallet itself (ETH sends, ETH→USDC swaps), recorded before broadcast. */
async function runRaw(ctx: Ctx, entry: JournalRow, waitMs: number): Promise<JournalRow> {
  let current = entry;
  if (current.status === 'intent') {
    await pauseAt(ctx, 'afterIntent', current.id);
    let hash: Hash;
    try {
      hash = await ctx.gateway.broadcast(current.raw_tx as Hex);
    } catch (err) {
      if (err instanceof ChainError && err.kind !== 'unavailable') {
        return markFailed(ctx, current, err.reason, { onChain: true });
      }
      throw upstreamUnavailable(
        'the chain is not reachable right now; the transaction is journaled and will be retried',
      );
    }
    current = await markSubmitted(ctx, current, hash);
    await pauseAt(ctx, 'afterSubmit', current.id);
  }
  const receipt = await ctx.gateway.waitForReceipt(current.tx_hash as Hash, waitMs);
  if (!receipt) return current;
  if (receipt.status === 'success') {
    return markConfirmed(ctx, current, current.tx_hash, { blockNumber: receipt.blockNumber.toString() });
  }
  return markFailed(ctx, current, 'the transaction reverted', { onChain: true });
}

/** Drives an entry as far as it goes within `waitMs` (a request waits for the receipt; 202 if it is late). */
export async function execute(
  ctx: Ctx,
  entry: JournalRow,
  waitMs = ctx.settings.confirmTimeoutMs,
  { resumed = false }: { resumed?: boolean } = {},
): Promise<JournalRow> {
  if (entry.status === 'confirmed' || entry.status === 'failed') return entry;
  switch (entry.method) {
    case 'relay3009':
      return runRelay(ctx, entry, waitMs, { resumed });
    case 'rawtx':
      return runRaw(ctx, entry, waitMs);
    case 'swap':
      return runSwap(ctx, entry, waitMs);
    case 'external3009':
      return entry;
  }
}

/**
 * Brings one entry left behind (its process died, or its request answered 202) to a final state, never
 * sending twice: an authorization is checked on-chain before it is relayed again (and can only ever be used
 * once), a raw transaction is re-broadcast byte for byte (same nonce, same hash).
 */
export async function reconcileEntry(ctx: Ctx, entry: JournalRow): Promise<JournalRow> {
  const now = BigInt(Math.floor(ctx.clock.now().getTime() / 1000));
  switch (entry.method) {
    case 'relay3009': {
      const auth = entry.auth!;
      if (await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex))
        return confirmFromChain(ctx, entry);
      if (entry.tx_hash) {
        const receipt = await ctx.gateway.receipt(entry.tx_hash as Hash);
        if (receipt?.status === 'reverted')
          return markFailed(ctx, entry, 'the transaction reverted', { onChain: true });
      }
      if (BigInt(auth.validBefore) <= now) {
        return markFailed(ctx, entry, 'the authorization expired unused', { onChain: false });
      }
      if (!entry.fee_settled) {
        return markFailed(ctx, entry, 'interrupted before the route fee settled; nothing was sent', { onChain: false });
      }
      return runRelay(ctx, { ...entry, status: 'intent' }, ctx.settings.confirmTimeoutMs, { resumed: true });
    }
    case 'rawtx': {
      const receipt = await ctx.gateway.receipt(entry.tx_hash as Hash);
      if (receipt?.status === 'success') return markConfirmed(ctx, entry, entry.tx_hash);
      if (receipt?.status === 'reverted') return markFailed(ctx, entry, 'the transaction reverted', { onChain: true });
      const nonce = Number(entry.details.nonce);
      if ((await ctx.gateway.minedNonce(entry.wallet as Address)) > nonce) {
        return markFailed(ctx, entry, 'another transaction took its nonce; it was never mined', { onChain: false });
      }
      if (entry.status === 'intent' && !entry.fee_settled) {
        return markFailed(ctx, entry, 'interrupted before the route fee settled; nothing was sent', { onChain: false });
      }
      return runRaw(ctx, { ...entry, status: 'intent' }, ctx.settings.confirmTimeoutMs);
    }
    case 'swap':
      return runSwap(ctx, entry, ctx.settings.confirmTimeoutMs, { reconciling: true });
    case 'external3009': {
      const auth = entry.auth!;
      if (await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as Hex))
        return confirmFromChain(ctx, entry);
      if (BigInt(auth.validBefore) <= now) {
        return markFailed(ctx, entry, 'the payment was never settled and its authorization expired', {
          onChain: entry.kind === 'pay',
        });
      }
      return entry;
    }
  }
}

/** One pass over unfinished entries nobody alive is driving. Safe on any number of replicas. */
export async function reconcilePending(ctx: Ctx, limit = 100): Promise<number> {
  let done = 0;
  for (const entry of await store.pendingEntries(ctx.db, limit)) {
    if (
      entry.executor !== null &&
      (entry.executor === ctx.instance.key || (await ctx.instance.isAlive(entry.executor)))
    ) {
      continue;
    }
    const taken = await store.takeEntry(ctx.db, entry.id, entry.executor, ctx.instance.key);
    if (!taken) continue;
    try {
      const result = await reconcileEntry(ctx, taken);
      if (result.status === 'confirmed' || result.status === 'failed') done++;
    } catch (err) {
      ctx.log.warn({ err, entry: entry.id }, 'reconcile failed; will retry');
    } finally {
      await release(ctx, taken);
    }
  }
  return done;
}
