import type { Ctx } from './context.js';
import type { WalletRow } from './db.js';
import { notifyOwner } from './notify.js';
import { type OpScope, type Scope, store } from './store.js';

/**
 * The circuit breaker: pauses per wallet and scope (`all`, `send`, `swap`, `pay`) set by the owner, by the
 * policy (`autoPauseBelow`) or by the breaker itself after N consecutive failed on-chain operations, plus the
 * operator's kill switch over the whole service (env `WALLET_KILL_SWITCH`, or the operator route).
 */

/** Counts one failed on-chain operation; at the threshold the scope pauses and the owner is told. */
export async function countFailure(ctx: Ctx, wallet: string, scope: OpScope, reason: string): Promise<void> {
  const now = ctx.clock.now();
  const failures = await store.breakerFailure(ctx.db, wallet, scope, reason.slice(0, 300), now);
  if (failures < ctx.settings.breakerThreshold) return;
  const why = `breaker: ${failures} consecutive failed on-chain operations (last: ${reason.slice(0, 200)})`;
  await ctx.db.transaction().execute(async (trx) => {
    const existing = (await store.pauses(trx, wallet)).find((p) => p.scope === scope);
    if (existing) return;
    await store.pause(trx, wallet, scope, why, 'breaker', now);
    const row = await store.getWallet(trx, wallet);
    if (row) await notifyOwner(ctx, trx, row, 'wallet.breaker_tripped', { scope, reason: why, failures });
  });
  ctx.log.warn({ wallet, scope, failures }, 'breaker tripped');
}

export async function pauseWallet(ctx: Ctx, wallet: WalletRow, scope: Scope, reason: string): Promise<void> {
  await store.pause(ctx.db, wallet.address, scope, reason, 'owner', ctx.clock.now());
}

/** Clears the scope's pause (or every pause for `all`) and resets its breaker count. */
export async function resumeWallet(ctx: Ctx, wallet: WalletRow, scope: Scope): Promise<number> {
  return store.resume(ctx.db, wallet.address, scope);
}

export interface SafetyState {
  paused: { scope: Scope; reason: string; source: string; pausedAt: string }[];
  breakers: { scope: OpScope; consecutiveFailures: number; threshold: number; lastError: string | null }[];
  killSwitch: { engaged: boolean; reason: string | null };
}

export async function safetyState(ctx: Ctx, wallet: string): Promise<SafetyState> {
  const [pauses, breakers, operator] = await Promise.all([
    store.pauses(ctx.db, wallet),
    store.breakers(ctx.db, wallet),
    store.operatorState(ctx.db),
  ]);
  return {
    paused: pauses.map((p) => ({
      scope: p.scope,
      reason: p.reason,
      source: p.source,
      pausedAt: p.paused_at.toISOString(),
    })),
    breakers: breakers.map((b) => ({
      scope: b.scope,
      consecutiveFailures: b.consecutive_failures,
      threshold: ctx.settings.breakerThreshold,
      lastError: b.last_error,
    })),
    killSwitch: killSwitchOf(ctx, operator),
  };
}

export function killSwitchOf(ctx: Ctx, operator: { kill_switch: boolean; reason: string | null }) {
  if (ctx.settings.killSwitchFromEnv) return { engaged: true, reason: 'WALLET_KILL_SWITCH=true' };
  return { engaged: operator.kill_switch, reason: operator.kill_switch ? operator.reason : null };
}

export async function killSwitch(ctx: Ctx) {
  return killSwitchOf(ctx, await store.operatorState(ctx.db));
}

export async function setKillSwitch(ctx: Ctx, engaged: boolean, reason: string | null) {
  await store.setKillSwitch(ctx.db, engaged, engaged ? reason : null, ctx.clock.now());
  ctx.log.warn({ engaged, reason }, 'operator kill switch changed');
  return killSwitch(ctx);
}
