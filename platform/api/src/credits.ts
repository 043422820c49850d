import { newId } from '@agentstack/core';
import type { Transaction } from '@agentstack/db';
import type { Executor, PlatformDB } from './db.js';
import { PlatformStore } from './store.js';

export interface Usage {
  tenantId: string;
  /** The models row's name (kept in the log even if the row changes later) and id. */
  model: string;
  modelId: string | null;
  provider: string;
  inputTokens: number;
  outputTokens: number;
  /** What the provider charges us, and our margin, in µ$; the tenant is debited their sum. */
  costMicros: bigint;
  marginMicros: bigint;
  conversationId?: string | null;
  requestId?: string | null;
}

/**
 * One LLM call's bill, the seam the LLM proxy settles through: a usage_logs row and a ledger debit of
 * cost + margin (kind `usage`, reference = the usage id) in one transaction — the caller's, when given one
 * (e.g. together with releasing a reservation), else its own. A free call (0 µ$) is logged without a debit.
 * Returns the new balance.
 */
export async function recordUsage(
  db: Executor | Transaction<PlatformDB>,
  usage: Usage,
): Promise<{ usageId: string; chargedMicros: bigint; balanceAfterMicros: bigint }> {
  const run = async (trx: Executor) => {
    const store = new PlatformStore(trx);
    const usageId = newId('usg');
    await trx
      .insertInto('usage_logs')
      .values({
        id: usageId,
        tenant_id: usage.tenantId,
        model: usage.model,
        model_id: usage.modelId,
        provider: usage.provider,
        input_tokens: usage.inputTokens,
        output_tokens: usage.outputTokens,
        cost_micros: usage.costMicros,
        margin_micros: usage.marginMicros,
        conversation_id: usage.conversationId ?? null,
        request_id: usage.requestId ?? null,
      })
      .execute();
    const chargedMicros = usage.costMicros + usage.marginMicros;
    if (chargedMicros === 0n) {
      const credits = await store.findCredits(usage.tenantId);
      return { usageId, chargedMicros, balanceAfterMicros: credits?.balance_micros ?? 0n };
    }
    const { entry } = await store.postLedgerEntry({
      tenantId: usage.tenantId,
      amountMicros: -chargedMicros,
      kind: 'usage',
      reference: usageId,
      memo: `${usage.model}: ${usage.inputTokens} in / ${usage.outputTokens} out`,
    });
    return { usageId, chargedMicros, balanceAfterMicros: entry.balance_after_micros };
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}
