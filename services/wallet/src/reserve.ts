import { formatUsdc, newId, notFound, utcDay } from '@agentstack/core';
import { withTransaction } from '@agentstack/db';
import { evaluatePolicy, policyFromJson } from '@agentstack/sdk/policy';
import type { Transaction } from 'kysely';
import type { Address } from 'viem';
import { countFailure } from './breaker.js';
import type { Ctx } from './context.js';
import type { Asset, JournalKind, JournalMethod, JournalRow, StoredAuthorization, WalletDB, WalletRow } from './db.js';
import { insufficientFunds, killSwitchEngaged, policyViolation, walletDeactivated, walletPaused } from './errors.js';
import { notifyOwner } from './notify.js';
import { type OpScope, store } from './store.js';

export interface Prepared {
  /** The operation cannot work (e.g. the chain's simulation reverts): journal it as failed, send nothing. */
  failure?: string;
  auth?: StoredAuthorization;
  rawTx?: string;
  txHash?: string;
  details?: Record<string, unknown>;
}

/** One money movement to decide on and record, before anything is sent. */
export interface Reservation {
  wallet: string;
  kind: JournalKind;
  /** The pausable scope it belongs to; null for route fees (only the kill switch stops those). */
  scope: OpScope | null;
  direction: 'out' | 'in';
  asset: Asset;
  /** Atomic units of `asset`. */
  amount: bigint;
  /** What the policy counts, atomic USDC. */
  usdcValue: bigint;
  /** USDC leaving the wallet (for the balance and `autoPauseBelow`). */
  usdcOut: bigint;
  counterparty?: string | null;
  service?: string | null;
  method: JournalMethod;
  actor: 'owner' | 'agent' | 'service';
  caller: string | null;
  /** Ties the entry to the request's Idempotency-Key, so a retry resumes it instead of sending again. */
  idempotencyRef?: string;
  /** False while the route's own fee has not settled yet (the reconciler drops such entries). */
  feeSettled: boolean;
  /** Whether the policy counts and checks it (false for an owner's sweep on deactivation). */
  policy: boolean;
  details?: Record<string, unknown>;
  /** Signs what will be executed, under the wallet lock (this is where nonces are decided). */
  prepare?: (trx: Transaction<WalletDB>, wallet: WalletRow) => Promise<Prepared>;
  /** Extra checks inside the same transaction (e.g. lock and re-check a funding request). */
  guard?: (trx: Transaction<WalletDB>) => Promise<void>;
  /** Runs in the same transaction once the entry exists (e.g. link it from the funding request). */
  afterInsert?: (trx: Transaction<WalletDB>, entry: JournalRow) => Promise<void>;
}

type Outcome =
  | { kind: 'entry'; entry: JournalRow; resumed: boolean }
  | { kind: 'denied'; error: Error; paused?: { reason: string } };

/**
 * The atomic policy decision: under the wallet's row lock (`SELECT … FOR UPDATE`), check pauses and the kill
 * switch, count today's usage, check the policy and the balance net of what is still in flight, and write the
 * journal intent, all in one transaction. Concurrent requests for one wallet queue on that lock, so 20 parallel
 * sends cannot exceed `maxPerDay` together.
 */
export async function reserve(ctx: Ctx, r: Reservation): Promise<{ entry: JournalRow; resumed: boolean }> {
  const now = ctx.clock.now();
  const outcome = await withTransaction<WalletDB, Outcome>(ctx.db, async (trx) => {
    const wallet = await store.lockWallet(trx, r.wallet);
    if (!wallet) throw notFound('wallet');
    if (r.idempotencyRef) {
      const existing = await store.entryByIdempotency(trx, r.wallet, r.idempotencyRef);
      if (existing) return { kind: 'entry', entry: existing, resumed: true };
    }
    if (wallet.status !== 'active') throw walletDeactivated();
    if (r.guard) await r.guard(trx);
    const payTo = r.kind === 'pay' ? (r.counterparty ?? undefined) : undefined;
    const needsBalance = (r.asset === 'USDC' && r.direction === 'out') || r.usdcOut > 0n;
    // The chain read runs while the database answers the rest.
    const [inputs, balance] = await Promise.all([
      store.decisionInputs(trx, r.wallet, utcDay(now), {
        ...((r.kind === 'send' || r.kind === 'fund') && r.counterparty ? { recipient: r.counterparty } : {}),
        ...(r.service ? { host: r.service } : {}),
        ...(payTo ? { payTo } : {}),
      }),
      needsBalance ? ctx.gateway.usdcBalance(r.wallet as Address) : undefined,
    ]);
    if (ctx.settings.killSwitchFromEnv || inputs.killSwitch.engaged) {
      return {
        kind: 'denied',
        error: killSwitchEngaged(
          inputs.killSwitch.reason ?? (ctx.settings.killSwitchFromEnv ? 'WALLET_KILL_SWITCH' : null),
        ),
      };
    }
    if (r.scope) {
      const pause = inputs.pauses.find((p) => p.scope === 'all') ?? inputs.pauses.find((p) => p.scope === r.scope);
      if (pause) return { kind: 'denied', error: walletPaused(pause.scope, pause.reason, pause.source) };
    }
    const available = balance === undefined ? undefined : balance - inputs.pendingUsdc;

    if (r.policy) {
      const policy = policyFromJson(wallet.policy);
      const usage = inputs.usage;
      const decision = evaluatePolicy(
        policy,
        {
          kind: r.kind === 'fund' || r.kind === 'sweep' ? 'send' : r.kind,
          value: r.usdcValue,
          usdcOut: r.usdcOut,
          ...(r.kind === 'send' || r.kind === 'fund' ? { recipient: r.counterparty ?? undefined } : {}),
          ...(r.kind === 'pay' ? { service: { host: r.service ?? undefined, payTo } } : {}),
        },
        usage,
        available,
      );
      if (!decision.allowed) {
        if (decision.pause) {
          const reason = `autoPauseBelow: the balance would fall below ${formatUsdc(policy.autoPauseBelow ?? 0n)} USDC`;
          await store.pause(trx, r.wallet, 'all', reason, 'policy', now);
          await notifyOwner(ctx, trx, wallet, 'wallet.paused', { scope: 'all', reason, source: 'policy' });
          return { kind: 'denied', error: policyViolation(decision), paused: { reason } };
        }
        return { kind: 'denied', error: policyViolation(decision) };
      }
    }
    if (available !== undefined && r.usdcOut > available) {
      return {
        kind: 'denied',
        error: insufficientFunds('USDC', formatUsdc(available < 0n ? 0n : available), formatUsdc(r.usdcOut)),
      };
    }

    const prepared = r.prepare ? await r.prepare(trx, wallet) : {};
    const entry = await store.insertEntry(trx, {
      id: newId('jr'),
      wallet: r.wallet,
      kind: r.kind,
      direction: r.direction,
      asset: r.asset,
      amount: r.amount.toString(),
      usdc_value: r.usdcValue,
      counts: r.policy,
      counterparty: r.counterparty ?? null,
      service: r.service ?? null,
      status: prepared.failure ? 'failed' : 'intent',
      method: r.method,
      auth: prepared.auth ? JSON.stringify(prepared.auth) : null,
      raw_tx: prepared.rawTx ?? null,
      tx_hash: prepared.txHash ?? null,
      steps: '[]',
      details: JSON.stringify({ ...r.details, ...prepared.details }),
      error: prepared.failure ?? null,
      actor: r.actor,
      caller: r.caller,
      idempotency_ref: r.idempotencyRef ?? null,
      executor: prepared.failure ? null : ctx.instance.key,
      fee_settled: r.feeSettled,
      usage_day: utcDay(now),
      created_at: now,
      updated_at: now,
      ...(prepared.failure ? { finished_at: now } : {}),
    });
    if (r.afterInsert && !prepared.failure) await r.afterInsert(trx, entry);
    return { kind: 'entry', entry, resumed: false };
  });
  if (outcome.kind === 'denied') throw outcome.error;
  // A failure found while preparing (the chain would revert) counts toward the breaker like any other.
  if (!outcome.resumed && outcome.entry.status === 'failed' && r.scope) {
    await countFailure(ctx, r.wallet, r.scope, outcome.entry.error ?? 'failed');
  }
  return { entry: outcome.entry, resumed: outcome.resumed };
}
