import { decodeCursor, formatDecimal, formatUsdc, type Page, toPage } from '@agentstack/core';
import { withTransaction } from '@agentstack/db';
import { sql } from 'kysely';
import type { Address } from 'viem';
import { z } from 'zod';
import type { Ctx } from './context.js';
import type { WalletDB } from './db.js';

const INDEXER = 'usdc_incoming';
/** Block span of one getLogs call (public RPCs cap ranges). */
const SPAN = 2_000n;
/** Addresses per getLogs call. */
const WALLETS_PER_QUERY = 200;

/**
 * Reads USDC Transfer logs into managed wallets. One pass covers what happened since the last one; the
 * cursor row is locked with SKIP LOCKED, so with several replicas one indexes while the others move on.
 * A fresh deployment starts at the block it first ran at (`startIndexing`): its wallets did not exist before.
 */
export async function startIndexing(ctx: Ctx): Promise<void> {
  const latest = await ctx.gateway.blockNumber();
  await ctx.db
    .insertInto('indexer_state')
    .values({ name: INDEXER, last_block: latest })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}

export async function indexIncoming(ctx: Ctx, maxSpans = 20): Promise<number> {
  const latest = await ctx.gateway.blockNumber();
  return withTransaction<WalletDB, number>(ctx.db, async (trx) => {
    const state = await trx
      .selectFrom('indexer_state')
      .selectAll()
      .where('name', '=', INDEXER)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!state || state.last_block >= latest) return 0;
    const wallets = (await trx.selectFrom('wallets').select('address').execute()).map((w) => w.address as Address);
    let from = state.last_block + 1n;
    let found = 0;
    const times = new Map<bigint, Date>();
    for (let span = 0; span < maxSpans && from <= latest; span++) {
      const to = from + SPAN - 1n < latest ? from + SPAN - 1n : latest;
      for (let i = 0; i < wallets.length; i += WALLETS_PER_QUERY) {
        const logs = await ctx.gateway.incomingTransfers(wallets.slice(i, i + WALLETS_PER_QUERY), from, to);
        for (const log of logs) {
          if (log.blockNumber === null || log.transactionHash === null || log.logIndex === null) continue;
          let at = times.get(log.blockNumber);
          if (!at) {
            const block = await ctx.gateway.client.getBlock({ blockNumber: log.blockNumber });
            at = new Date(Number(block.timestamp) * 1000);
            times.set(log.blockNumber, at);
          }
          const inserted = await trx
            .insertInto('incoming_transfers')
            .values({
              tx_hash: log.transactionHash,
              log_index: log.logIndex,
              wallet: log.args.to!,
              from_address: log.args.from!,
              amount: log.args.value!.toString(),
              block_number: log.blockNumber,
              observed_at: at,
            })
            .onConflict((oc) => oc.columns(['tx_hash', 'log_index']).doNothing())
            .executeTakeFirst();
          found += Number(inserted.numInsertedOrUpdatedRows ?? 0n);
        }
      }
      await trx.updateTable('indexer_state').set({ last_block: to }).where('name', '=', INDEXER).execute();
      from = to + 1n;
    }
    return found;
  });
}

export interface HistoryItem {
  id: string;
  type: 'journal' | 'incoming';
  kind: string;
  direction: 'out' | 'in';
  asset: 'USDC' | 'ETH';
  amount: string;
  amountAtomic: string;
  counterparty: string | null;
  service: string | null;
  status: string;
  txHash: string | null;
  error: string | null;
  actor: string | null;
  at: string;
  finishedAt: string | null;
  details: Record<string, unknown>;
}

const cursorShape = z.object({ t: z.string(), id: z.string() });

const formatAsset = (asset: string, atomic: bigint) =>
  asset === 'ETH' ? formatDecimal(atomic, 18, 1) : formatUsdc(atomic);

/** Journal entries and observed incoming transfers, newest first, one cursor across both. */
export async function history(
  ctx: Ctx,
  wallet: string,
  { limit, cursor }: { limit: number; cursor?: string },
): Promise<Page<HistoryItem>> {
  const after = decodeCursor(cursor, cursorShape);
  const afterAt = after ? new Date(after.t) : null;
  // A transfer the journal already describes (a funding approval, a swap refund) is shown once, as the entry.
  const { rows } = await sql<{
    id: string;
    type: 'journal' | 'incoming';
    kind: string;
    direction: 'out' | 'in';
    asset: 'USDC' | 'ETH';
    amount: string;
    counterparty: string | null;
    service: string | null;
    status: string;
    tx_hash: string | null;
    error: string | null;
    actor: string | null;
    at: Date;
    finished_at: Date | null;
    details: Record<string, unknown>;
  }>`
    SELECT * FROM (
      SELECT j.id, 'journal' AS type, j.kind, j.direction, j.asset, j.amount::text AS amount, j.counterparty,
             j.service, j.status, j.tx_hash, j.error, j.actor, j.created_at AS at, j.finished_at,
             j.details - 'nonce' - 'fromBlock' AS details
      FROM journal j WHERE j.wallet = ${wallet}
      UNION ALL
      SELECT 'in_' || i.tx_hash || '_' || i.log_index, 'incoming', 'transfer', 'in', 'USDC', i.amount::text,
             lower(i.from_address), NULL, 'confirmed', i.tx_hash, NULL, NULL, i.observed_at, i.observed_at,
             jsonb_build_object('blockNumber', i.block_number::text)
      FROM incoming_transfers i
      WHERE i.wallet = ${wallet}
        AND NOT EXISTS (
          SELECT 1 FROM journal j WHERE j.wallet = i.wallet
            AND (j.tx_hash = i.tx_hash OR j.steps @> jsonb_build_array(jsonb_build_object('hash', i.tx_hash))))
    ) h
    WHERE ${afterAt}::timestamptz IS NULL OR (h.at, h.id) < (${afterAt}::timestamptz, ${after?.id ?? ''})
    ORDER BY h.at DESC, h.id DESC
    LIMIT ${limit + 1}
  `.execute(ctx.db);
  return toPage(
    rows,
    limit,
    (r): HistoryItem => ({
      id: r.id,
      type: r.type,
      kind: r.kind,
      direction: r.direction,
      asset: r.asset,
      amount: formatAsset(r.asset, BigInt(r.amount)),
      amountAtomic: r.amount,
      counterparty: r.counterparty,
      service: r.service,
      status: r.status,
      txHash: r.tx_hash,
      error: r.error,
      actor: r.actor,
      at: r.at.toISOString(),
      finishedAt: r.finished_at?.toISOString() ?? null,
      details: r.details ?? {},
    }),
    (r) => ({ t: r.at.toISOString(), id: r.id }),
  );
}
