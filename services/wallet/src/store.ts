import { type Insertable, type Kysely, sql, type Transaction } from 'kysely';
import type {
  FundRequestRow,
  FundRequestsTable,
  JournalRow,
  JournalTable,
  PausesTable,
  WalletDB,
  WalletRow,
  WalletsTable,
} from './db.js';

export type Db = Kysely<WalletDB> | Transaction<WalletDB>;

export type Scope = 'all' | 'send' | 'swap' | 'pay';
export type OpScope = Exclude<Scope, 'all'>;

export interface UsageFilter {
  recipient?: string;
  host?: string;
  payTo?: string;
}

/** SQL for wallet.sh only. Every method takes the executor to run on (the pool or a transaction). */
export const store = {
  // --- wallets -------------------------------------------------------------------------------------------

  async insertWallet(db: Db, row: Insertable<WalletsTable>): Promise<void> {
    await db.insertInto('wallets').values(row).execute();
  },

  getWallet(db: Db, address: string): Promise<WalletRow | undefined> {
    return db.selectFrom('wallets').selectAll().where('address', '=', address).executeTakeFirst();
  },

  /** The per-wallet lock every money decision takes first: policy checks and journal intents serialise here. */
  lockWallet(db: Transaction<WalletDB>, address: string): Promise<WalletRow | undefined> {
    return db.selectFrom('wallets').selectAll().where('address', '=', address).forUpdate().executeTakeFirst();
  },

  walletByAgentToken(db: Db, tokenHash: string): Promise<WalletRow | undefined> {
    return db.selectFrom('wallets').selectAll().where('agent_token_hash', '=', tokenHash).executeTakeFirst();
  },

  /**
   * Binds `owner` with a claim token, once. Answers why not when it cannot: another owner already, the token
   * is not this wallet's (or was used), or it expired.
   */
  async claim(
    db: Db,
    address: string,
    claimHash: string,
    owner: string,
    now: Date,
  ): Promise<'claimed' | 'already_owned' | 'wrong_token' | 'expired'> {
    const updated = await db
      .updateTable('wallets')
      .set({ owner, claim_token_hash: null, claimed_at: now })
      .where('address', '=', address)
      .where('owner', 'is', null)
      .where('claim_token_hash', '=', claimHash)
      .where('claim_expires_at', '>', now)
      .executeTakeFirst();
    if (updated.numUpdatedRows > 0n) return 'claimed';
    const wallet = await store.getWallet(db, address);
    if (!wallet) return 'wrong_token';
    if (wallet.owner !== null) return 'already_owned';
    if (wallet.claim_token_hash !== claimHash) return 'wrong_token';
    return 'expired';
  },

  /** Undoes a claim whose paying request then failed to settle. */
  async unclaim(db: Db, address: string, claimHash: string, owner: string, claimedAt: Date): Promise<void> {
    await db
      .updateTable('wallets')
      .set({ owner: null, claim_token_hash: claimHash, claimed_at: null })
      .where('address', '=', address)
      .where('owner', '=', owner)
      .where('claimed_at', '=', claimedAt)
      .execute();
  },

  listOwned(db: Db, owner: string, limit: number, after?: { t: string; address: string }): Promise<WalletRow[]> {
    let query = db
      .selectFrom('wallets')
      .selectAll()
      .where('owner', '=', owner)
      .orderBy('created_at', 'desc')
      .orderBy('address', 'desc')
      .limit(limit + 1);
    if (after) {
      query = query.where((eb) =>
        eb(eb.refTuple('created_at', 'address'), '<', eb.tuple(new Date(after.t), after.address)),
      );
    }
    return query.execute();
  },

  async setPolicy(db: Db, address: string, policyJson: unknown, now: Date): Promise<void> {
    await db
      .updateTable('wallets')
      .set({ policy: JSON.stringify(policyJson), policy_updated_at: now })
      .where('address', '=', address)
      .execute();
  },

  async setAgentToken(db: Db, address: string, tokenHash: string): Promise<void> {
    await db.updateTable('wallets').set({ agent_token_hash: tokenHash }).where('address', '=', address).execute();
  },

  async deactivate(db: Db, address: string, now: Date, revokedTokenHash: string): Promise<void> {
    await db
      .updateTable('wallets')
      .set({ status: 'deactivated', deactivated_at: now, agent_token_hash: revokedTokenHash })
      .where('address', '=', address)
      .execute();
  },

  // --- journal -------------------------------------------------------------------------------------------

  async insertEntry(db: Db, row: Insertable<JournalTable>): Promise<JournalRow> {
    return db.insertInto('journal').values(row).returningAll().executeTakeFirstOrThrow();
  },

  getEntry(db: Db, id: string): Promise<JournalRow | undefined> {
    return db.selectFrom('journal').selectAll().where('id', '=', id).executeTakeFirst();
  },

  entryByIdempotency(db: Db, wallet: string, ref: string): Promise<JournalRow | undefined> {
    return db
      .selectFrom('journal')
      .selectAll()
      .where('wallet', '=', wallet)
      .where('idempotency_ref', '=', ref)
      .executeTakeFirst();
  },

  async updateEntry(
    db: Db,
    id: string,
    patch: Partial<{
      status: JournalRow['status'];
      tx_hash: string | null;
      raw_tx: string | null;
      steps: string;
      details: string;
      error: string | null;
      executor: bigint | null;
      fee_settled: boolean;
      submitted_at: Date;
      finished_at: Date;
    }>,
    now: Date,
    onlyIf?: { statusIn?: JournalRow['status'][] },
  ): Promise<JournalRow | undefined> {
    let query = db
      .updateTable('journal')
      .set({ ...patch, updated_at: now })
      .where('id', '=', id);
    if (onlyIf?.statusIn) query = query.where('status', 'in', onlyIf.statusIn);
    return query.returningAll().executeTakeFirst();
  },

  /** What the policy already counted today for this wallet (and its recipient / host / payTo). */
  async usage(db: Db, wallet: string, day: string, filter: UsageFilter) {
    const row = await db
      .selectFrom('journal')
      .select([
        sql<string>`coalesce(sum(usdc_value), 0)`.as('today'),
        sql<string>`coalesce(sum(usdc_value) filter (where kind = 'send' and counterparty = ${filter.recipient ?? null}), 0)`.as(
          'recipient',
        ),
        sql<string>`coalesce(sum(usdc_value) filter (where kind = 'pay' and service = ${filter.host ?? null}), 0)`.as(
          'host',
        ),
        sql<string>`coalesce(sum(usdc_value) filter (where kind = 'pay' and counterparty = ${filter.payTo ?? null}), 0)`.as(
          'pay_to',
        ),
      ])
      .where('wallet', '=', wallet)
      .where('usage_day', '=', day)
      .where('status', '<>', 'failed')
      .where('counts', '=', true)
      .executeTakeFirstOrThrow();
    return {
      today: BigInt(row.today),
      recipientToday: BigInt(row.recipient),
      hostToday: BigInt(row.host),
      payToToday: BigInt(row.pay_to),
    };
  },

  /**
   * What entries not yet final will still take out of the wallet: the on-chain balance minus this is what can
   * be spent. A USDC→ETH swap holds its input only until its pull has happened (then the chain shows it).
   */
  async pendingOutgoing(db: Db, wallet: string, asset: 'USDC' | 'ETH'): Promise<bigint> {
    const row = await db
      .selectFrom('journal')
      .select(sql<string>`coalesce(sum(amount), 0)`.as('sum'))
      .where('wallet', '=', wallet)
      .where('asset', '=', asset)
      .where('direction', '=', 'out')
      .where('status', 'in', ['intent', 'submitted'])
      .where(
        sql<boolean>`(method <> 'swap' or not exists (
          select 1 from jsonb_array_elements(steps) s where s->>'stage' = 'pull' and s->>'done' = 'true'))`,
      )
      .executeTakeFirstOrThrow();
    return BigInt(row.sum);
  },

  /**
   * Everything a money decision reads besides the chain, in one round trip (it runs under the wallet lock, so
   * every query saved is throughput): the kill switch, the wallet's pauses, USDC still in flight, and today's
   * usage for the wallet and the operation's recipient / host / payTo.
   */
  async decisionInputs(db: Db, wallet: string, day: string, filter: UsageFilter) {
    const { rows } = await sql<{
      kill_switch: boolean;
      kill_reason: string | null;
      pauses: { scope: Scope; reason: string; source: PausesTable['source'] }[] | null;
      pending_usdc: string;
      today: string;
      recipient: string;
      host: string;
      pay_to: string;
    }>`
      SELECT o.kill_switch, o.reason AS kill_reason,
        (SELECT json_agg(json_build_object('scope', p.scope, 'reason', p.reason, 'source', p.source))
           FROM pauses p WHERE p.wallet = ${wallet}) AS pauses,
        (SELECT coalesce(sum(j.amount), 0)::text FROM journal j
           WHERE j.wallet = ${wallet} AND j.asset = 'USDC' AND j.direction = 'out' AND j.status IN ('intent', 'submitted')
             AND (j.method <> 'swap' OR NOT EXISTS (
               SELECT 1 FROM jsonb_array_elements(j.steps) s WHERE s->>'stage' = 'pull' AND s->>'done' = 'true'))
        ) AS pending_usdc,
        u.today::text, u.recipient::text, u.host::text, u.pay_to::text
      FROM operator_state o,
      LATERAL (
        SELECT coalesce(sum(usdc_value), 0) AS today,
          coalesce(sum(usdc_value) FILTER (WHERE kind IN ('send', 'fund') AND counterparty = ${filter.recipient ?? null}), 0) AS recipient,
          coalesce(sum(usdc_value) FILTER (WHERE kind = 'pay' AND service = ${filter.host ?? null}), 0) AS host,
          coalesce(sum(usdc_value) FILTER (WHERE kind = 'pay' AND counterparty = ${filter.payTo ?? null}), 0) AS pay_to
        FROM journal
        WHERE wallet = ${wallet} AND usage_day = ${day} AND status <> 'failed' AND counts
      ) u
    `.execute(db);
    const row = rows[0]!;
    return {
      killSwitch: { engaged: row.kill_switch, reason: row.kill_reason },
      pauses: row.pauses ?? [],
      pendingUsdc: BigInt(row.pending_usdc),
      usage: {
        today: BigInt(row.today),
        recipientToday: BigInt(row.recipient),
        hostToday: BigInt(row.host),
        payToToday: BigInt(row.pay_to),
      },
    };
  },

  /** Highest nonce among this wallet's own not-yet-final raw transactions. */
  async maxPendingNonce(db: Db, wallet: string): Promise<number | undefined> {
    const row = await db
      .selectFrom('journal')
      .select(sql<string | null>`max((details->>'nonce')::bigint)`.as('nonce'))
      .where('wallet', '=', wallet)
      .where('method', '=', 'rawtx')
      .where('status', 'in', ['intent', 'submitted'])
      .executeTakeFirstOrThrow();
    return row.nonce === null ? undefined : Number(row.nonce);
  },

  /** Entries not final and not driven by a live request of this process. */
  pendingEntries(db: Db, limit: number): Promise<JournalRow[]> {
    return db
      .selectFrom('journal')
      .selectAll()
      .where('status', 'in', ['intent', 'submitted'])
      .orderBy('created_at')
      .limit(limit)
      .execute();
  },

  /**
   * Marks an entry confirmed and, in the same statement, resets its scope's breaker count (a success breaks a
   * run of failures). Only an entry still in flight changes.
   */
  async confirmEntry(
    db: Db,
    id: string,
    patch: { txHash: string | null; details: string },
    now: Date,
    scope: OpScope | null,
  ): Promise<JournalRow | undefined> {
    const { rows } = await sql<JournalRow>`
      WITH done AS (
        UPDATE journal SET status = 'confirmed', tx_hash = coalesce(${patch.txHash}, tx_hash), details = ${patch.details}::jsonb,
          error = NULL, executor = NULL, finished_at = ${now}, updated_at = ${now}
        WHERE id = ${id} AND status IN ('intent', 'submitted')
        RETURNING *
      ), reset AS (
        UPDATE breakers SET consecutive_failures = 0, updated_at = ${now}
        WHERE wallet = (SELECT wallet FROM done) AND scope = ${scope} AND consecutive_failures > 0
      )
      SELECT * FROM done
    `.execute(db);
    return rows[0];
  },

  /** Takes over an entry whose executor is `from` (compare-and-set, so two reconcilers never both do). */
  async takeEntry(db: Db, id: string, from: bigint | null, to: bigint | null): Promise<JournalRow | undefined> {
    return db
      .updateTable('journal')
      .set({ executor: to })
      .where('id', '=', id)
      .where('status', 'in', ['intent', 'submitted'])
      .where((eb) => (from === null ? eb('executor', 'is', null) : eb('executor', '=', from)))
      .returningAll()
      .executeTakeFirst();
  },

  // --- pauses, breakers, kill switch ---------------------------------------------------------------------

  pauses(db: Db, wallet: string) {
    return db.selectFrom('pauses').selectAll().where('wallet', '=', wallet).orderBy('scope').execute();
  },

  async pause(
    db: Db,
    wallet: string,
    scope: Scope,
    reason: string,
    source: PausesTable['source'],
    now: Date,
  ): Promise<void> {
    await db
      .insertInto('pauses')
      .values({ wallet, scope, reason, source, paused_at: now })
      .onConflict((oc) => oc.columns(['wallet', 'scope']).doUpdateSet({ reason, source, paused_at: now }))
      .execute();
  },

  /** Resuming a scope clears its pause and its breaker; `all` clears every pause of the wallet. */
  async resume(db: Db, wallet: string, scope: Scope): Promise<number> {
    const removed = await db
      .deleteFrom('pauses')
      .where('wallet', '=', wallet)
      .where((eb) => (scope === 'all' ? eb.val(true) : eb('scope', '=', scope)))
      .executeTakeFirst();
    await db
      .updateTable('breakers')
      .set({ consecutive_failures: 0 })
      .where('wallet', '=', wallet)
      .where((eb) => (scope === 'all' ? eb.val(true) : eb('scope', '=', scope as 'send')))
      .execute();
    return Number(removed.numDeletedRows);
  },

  /** Counts a failed on-chain operation; returns the consecutive count. */
  async breakerFailure(db: Db, wallet: string, scope: OpScope, error: string, now: Date): Promise<number> {
    const row = await db
      .insertInto('breakers')
      .values({ wallet, scope, consecutive_failures: 1, last_error: error, updated_at: now })
      .onConflict((oc) =>
        oc.columns(['wallet', 'scope']).doUpdateSet({
          consecutive_failures: sql`breakers.consecutive_failures + 1`,
          last_error: error,
          updated_at: now,
        }),
      )
      .returning('consecutive_failures')
      .executeTakeFirstOrThrow();
    return row.consecutive_failures;
  },

  async breakerSuccess(db: Db, wallet: string, scope: OpScope, now: Date): Promise<void> {
    await db
      .updateTable('breakers')
      .set({ consecutive_failures: 0, updated_at: now })
      .where('wallet', '=', wallet)
      .where('scope', '=', scope)
      .where('consecutive_failures', '>', 0)
      .execute();
  },

  breakers(db: Db, wallet: string) {
    return db.selectFrom('breakers').selectAll().where('wallet', '=', wallet).orderBy('scope').execute();
  },

  operatorState(db: Db) {
    return db.selectFrom('operator_state').selectAll().executeTakeFirstOrThrow();
  },

  async setKillSwitch(db: Db, engaged: boolean, reason: string | null, now: Date): Promise<void> {
    await db.updateTable('operator_state').set({ kill_switch: engaged, reason, changed_at: now }).execute();
  },

  // --- funding requests ----------------------------------------------------------------------------------

  async insertFundRequest(db: Db, row: Insertable<FundRequestsTable>): Promise<FundRequestRow> {
    return db.insertInto('fund_requests').values(row).returningAll().executeTakeFirstOrThrow();
  },

  getFundRequest(db: Db, id: string): Promise<FundRequestRow | undefined> {
    return db.selectFrom('fund_requests').selectAll().where('id', '=', id).executeTakeFirst();
  },

  lockFundRequest(db: Transaction<WalletDB>, id: string): Promise<FundRequestRow | undefined> {
    return db.selectFrom('fund_requests').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  },

  listFundRequests(
    db: Db,
    wallet: string,
    status: FundRequestRow['status'] | undefined,
    limit: number,
    after?: { t: string; id: string },
  ): Promise<FundRequestRow[]> {
    let query = db
      .selectFrom('fund_requests')
      .selectAll()
      .where('wallet', '=', wallet)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (status) query = query.where('status', '=', status);
    if (after) {
      query = query.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(new Date(after.t), after.id)));
    }
    return query.execute();
  },

  async updateFundRequest(
    db: Db,
    id: string,
    patch: Partial<Pick<FundRequestRow, 'status' | 'decision_reason' | 'journal_id' | 'tx_hash' | 'decided_at'>>,
  ): Promise<FundRequestRow | undefined> {
    return db.updateTable('fund_requests').set(patch).where('id', '=', id).returningAll().executeTakeFirst();
  },

  /** Claims pending requests past their expiry; any number of replicas may sweep at once. */
  expiredFundRequests(db: Transaction<WalletDB>, now: Date, limit: number): Promise<FundRequestRow[]> {
    return db
      .selectFrom('fund_requests')
      .selectAll()
      .where('status', '=', 'pending')
      .where('expires_at', '<=', now)
      .orderBy('expires_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  },

  // --- notifications -------------------------------------------------------------------------------------

  notificationSettings(db: Db, wallet: string) {
    return db.selectFrom('notification_settings').selectAll().where('wallet', '=', wallet).executeTakeFirst();
  },

  async setNotificationSettings(
    db: Db,
    wallet: string,
    settings: { webhook_target_id: string | null; email: string | null },
    now: Date,
  ): Promise<void> {
    await db
      .insertInto('notification_settings')
      .values({ wallet, ...settings, updated_at: now })
      .onConflict((oc) => oc.column('wallet').doUpdateSet({ ...settings, updated_at: now }))
      .execute();
  },

  // --- rate limits ---------------------------------------------------------------------------------------

  /** Counts a hit in a fixed window and returns the count so far (this one included). */
  async hit(db: Db, key: string, windowStart: Date): Promise<number> {
    const row = await db
      .insertInto('rate_limits')
      .values({ key, window_start: windowStart, count: 1 })
      .onConflict((oc) => oc.columns(['key', 'window_start']).doUpdateSet({ count: sql`rate_limits.count + 1` }))
      .returning('count')
      .executeTakeFirstOrThrow();
    if (Math.random() < 0.01) {
      await db
        .deleteFrom('rate_limits')
        .where('window_start', '<', new Date(windowStart.getTime() - 86_400_000))
        .execute();
    }
    return row.count;
  },
};
