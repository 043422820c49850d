import { type Kysely, withTransaction } from '@agentstack/db';
import { type Balance, ledgerSql, type SpawnDB, uniqueViolation } from './store.js';

/**
 * The caller's spawn balance: deposits paid in with x402, reserved by servers, burnt daily, refunded on
 * destroy. `available` funds new servers; `reserved` is held by live servers' deposits.
 */
export class Ledger {
  constructor(private readonly db: Kysely<SpawnDB>) {}

  balance(owner: string): Promise<Balance> {
    return ledgerSql.balance(this.db, owner);
  }

  /**
   * Credits a settled deposit once per payment (`reference` is the settlement): a replay of the same
   * payment credits nothing and returns the balance.
   */
  async deposit(owner: string, amount: bigint, reference: string): Promise<{ balance: Balance; credited: boolean }> {
    return this.credit(owner, amount, reference, 'deposit');
  }

  /** Credits a route fee back after its irreversible effect failed (the caller paid, nothing happened). */
  async creditFee(owner: string, amount: bigint, reference: string): Promise<{ balance: Balance; credited: boolean }> {
    return this.credit(owner, amount, reference, 'fee_credit');
  }

  private async credit(owner: string, amount: bigint, reference: string, kind: 'deposit' | 'fee_credit') {
    if (amount <= 0n) throw new Error('credit must be positive');
    try {
      return await withTransaction(this.db, async (trx) => {
        const after = await ledgerSql.move(trx, owner, amount, 0n);
        if (!after) throw new Error('crediting cannot make a balance negative');
        await ledgerSql.record(trx, { owner, kind, amount, after, reference });
        return { balance: after, credited: true };
      });
    } catch (err) {
      if (uniqueViolation(err)) return { balance: await this.balance(owner), credited: false };
      throw err;
    }
  }

  /** Ledger rows of an owner, newest first (for the balance route and tests). */
  entries(owner: string, limit = 50) {
    return this.db
      .selectFrom('ledger')
      .selectAll()
      .where('owner', '=', owner)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }
}
