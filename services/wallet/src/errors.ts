import { AppError, formatUsdc } from '@agentstack/core';
import type { Decision } from '@agentstack/sdk/policy';

export const walletPaused = (scope: string, reason: string, pausedBy: string) =>
  new AppError('wallet_paused', `this wallet is paused (${scope}): ${reason}`, 409, {
    details: { scope, reason, pausedBy },
  });

export const killSwitchEngaged = (reason: string | null) =>
  new AppError(
    'wallet_paused',
    `the operator has stopped all money movement on this service${reason ? `: ${reason}` : ''}`,
    409,
    { details: { scope: 'all', reason: reason ?? 'operator kill switch', pausedBy: 'operator' } },
  );

export const walletDeactivated = () =>
  new AppError('wallet_deactivated', 'this wallet was deactivated; it can no longer move money', 409);

export function policyViolation(decision: Extract<Decision, { allowed: false }>): AppError {
  const remaining = decision.remaining === null ? null : formatUsdc(decision.remaining);
  return new AppError(
    'policy_violation',
    `refused by policy rule ${decision.rule}: ${decision.message}` +
      (remaining === null ? '' : `; remaining allowance ${remaining} USDC`),
    422,
    {
      details: {
        rule: decision.rule,
        limit: decision.limit === null ? null : formatUsdc(decision.limit),
        remaining,
        paused: decision.pause,
      },
    },
  );
}

export const insufficientFunds = (asset: string, available: string, needed: string, hint?: string) =>
  new AppError(
    'insufficient_funds',
    `the wallet has ${available} ${asset} available, ${needed} is needed${hint ? ` (${hint})` : ''}`,
    422,
    { details: { asset, available, needed } },
  );

export const transactionFailed = (reason: string, details: Record<string, unknown> = {}) =>
  new AppError('transaction_failed', `the transaction failed on-chain: ${reason}`, 422, { details });
