import { formatDecimal, formatUsdc } from '@agentstack/core';
import type { JournalRow } from './db.js';

export const formatEth = (wei: bigint) => formatDecimal(wei, 18, 1);

/** Journal entry as the API shows it. */
export function entryView(entry: JournalRow) {
  const atomic = BigInt(entry.amount);
  const { nonce: _n, fromBlock: _f, ...details } = entry.details;
  return {
    id: entry.id,
    kind: entry.kind,
    direction: entry.direction,
    asset: entry.asset,
    amount: entry.asset === 'ETH' ? formatEth(atomic) : formatUsdc(atomic),
    amountAtomic: atomic.toString(),
    counterparty: entry.counterparty,
    service: entry.service,
    status: entry.status,
    txHash: entry.tx_hash,
    error: entry.error,
    actor: entry.actor,
    createdAt: entry.created_at.toISOString(),
    finishedAt: entry.finished_at?.toISOString() ?? null,
    details,
  };
}
