import { type Logger, newId } from '@agentstack/core';
import { recordUsage, type Usage } from '../credits.js';
import type { Executor } from '../db.js';
import { PlatformStore } from '../store.js';
import { planReservation, type ReservationPlanInput } from './billing.js';
import { ProxyStore } from './store.js';

export type Hold =
  | {
      ok: true;
      reservationId: string;
      amountMicros: bigint;
      maxTokens: number;
      capped: boolean;
      balanceAfterMicros: bigint;
    }
  | { ok: false; balanceMicros: bigint; minimumMicros: bigint; minOutputTokens: number };

export interface Settlement {
  usageId: string;
  chargedMicros: bigint;
  balanceAfterMicros: bigint;
}

/**
 * Holds on a tenant's credits while an LLM call is in flight (ledger kinds `reservation` and
 * `reservation_release`, reference = the hold's id), and their settlement.
 *
 * - `hold`: in one transaction, lock the tenant's credits row, size the hold against the balance (which
 *   already has every other in-flight hold taken off), post the debit and record the hold. Concurrent calls
 *   of one tenant queue on the row lock, so together they can never hold more than the balance.
 * - `settle`: in one transaction, release the hold (unless a sweeper already did) and record the usage row
 *   and its debit (credits.ts `recordUsage`).
 * - `release`: the call failed: give the hold back, bill nothing.
 * - `sweepExpired`: holds whose process stopped renewing them (it crashed) are released, by any number of
 *   replicas at once (`FOR UPDATE SKIP LOCKED`). A call settling after its hold was swept is still billed
 *   once; the release is never posted twice (the ledger reference is unique).
 */
export class Reservations {
  constructor(private readonly deps: { db: Executor; ttlMs: number; log: Logger }) {}

  async hold(
    request: { tenantId: string; model: string; requestId: string | null } & Omit<
      ReservationPlanInput,
      'balanceMicros'
    >,
  ): Promise<Hold> {
    return this.deps.db.transaction().execute(async (trx) => {
      const proxyStore = new ProxyStore(trx);
      const balance = await proxyStore.lockBalance(request.tenantId);
      if (balance === undefined) throw new Error(`tenant ${request.tenantId} has no credits row`);
      const plan = planReservation({ ...request, balanceMicros: balance });
      if (!plan.ok) {
        return {
          ok: false,
          balanceMicros: balance,
          minimumMicros: plan.minimumMicros,
          minOutputTokens: plan.minOutputTokens,
        };
      }
      const reservationId = newId('rsv');
      let balanceAfterMicros = balance;
      if (plan.reserveMicros > 0n) {
        const { entry } = await new PlatformStore(trx).postLedgerEntry({
          tenantId: request.tenantId,
          amountMicros: -plan.reserveMicros,
          kind: 'reservation',
          reference: reservationId,
          memo: `Hold for a ${request.model} request (up to ${plan.maxTokens} output tokens), released when it completes`,
        });
        balanceAfterMicros = entry.balance_after_micros;
      }
      await proxyStore.insertReservation({
        id: reservationId,
        tenantId: request.tenantId,
        model: request.model,
        amountMicros: plan.reserveMicros,
        maxOutputTokens: plan.maxTokens,
        inputTokensEstimate: request.inputTokens,
        requestId: request.requestId,
        ttlMs: this.deps.ttlMs,
      });
      return {
        ok: true,
        reservationId,
        amountMicros: plan.reserveMicros,
        maxTokens: plan.maxTokens,
        capped: plan.capped,
        balanceAfterMicros,
      };
    });
  }

  /** Releases the hold (if still open) and bills the call, together. */
  async settle(reservationId: string, usage: Usage): Promise<Settlement> {
    return this.deps.db.transaction().execute(async (trx) => {
      const closed = await new ProxyStore(trx).closeLiveReservation(reservationId, 'settled');
      if (!closed) throw new Error(`hold ${reservationId} was already settled or released`);
      if (closed.previous === 'open') {
        await this.postRelease(
          trx,
          closed.tenantId,
          reservationId,
          closed.amountMicros,
          'Hold released: request billed',
        );
      } else {
        // Swept as expired while the call was still running (its process could not renew it): the hold is back
        // already; the call is billed all the same.
        this.deps.log.warn({ reservationId }, 'settling a call whose hold had expired');
      }
      const result = await recordUsage(trx, { ...usage, reservationId });
      return {
        usageId: result.usageId,
        chargedMicros: result.chargedMicros,
        balanceAfterMicros: result.balanceAfterMicros,
      };
    });
  }

  /** The call failed: the hold goes back and nothing is billed. */
  async release(reservationId: string): Promise<void> {
    await this.deps.db.transaction().execute(async (trx) => {
      const closed = await new ProxyStore(trx).closeLiveReservation(reservationId, 'released');
      if (closed?.previous !== 'open') return; // already swept (or closed): nothing to give back twice
      await this.postRelease(
        trx,
        closed.tenantId,
        reservationId,
        closed.amountMicros,
        'Hold released: request failed, not billed',
      );
    });
  }

  renew(reservationIds: string[]): Promise<number> {
    return new ProxyStore(this.deps.db).renewReservations(reservationIds, this.deps.ttlMs);
  }

  /** Releases up to `limit` expired holds; returns how many. Safe to run on every replica at once. */
  async sweepExpired(limit = 100): Promise<number> {
    return this.deps.db.transaction().execute(async (trx) => {
      const proxyStore = new ProxyStore(trx);
      const expired = await proxyStore.claimExpiredReservations(limit);
      for (const row of expired) {
        await this.postRelease(
          trx,
          row.tenant_id,
          row.id,
          row.amount_micros,
          'Hold released: its request was interrupted (expired)',
        );
        await proxyStore.closeReservation(row.id, 'expired');
      }
      if (expired.length > 0) {
        this.deps.log.warn({ holds: expired.map((r) => r.id) }, 'released expired LLM holds');
      }
      return expired.length;
    });
  }

  private async postRelease(trx: Executor, tenantId: string, reservationId: string, amount: bigint, memo: string) {
    if (amount === 0n) return;
    await new PlatformStore(trx).postLedgerEntry({
      tenantId,
      amountMicros: amount,
      kind: 'reservation_release',
      reference: reservationId,
      memo,
    });
  }
}
