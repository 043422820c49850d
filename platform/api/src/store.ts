import { type Selectable, sql } from '@agentstack/db';
import type { Channel, Executor, LedgerKind, MessageRole, PlatformDB, TenantStatus } from './db.js';

export type TenantRow = Selectable<PlatformDB['tenants']>;
export type CreditsRow = Selectable<PlatformDB['credits']>;
export type LedgerRow = Selectable<PlatformDB['credit_ledger']>;
export type ConversationRow = Selectable<PlatformDB['conversations']>;
export type MessageRow = Selectable<PlatformDB['messages']>;
export type ModelRow = Selectable<PlatformDB['models']>;
export type UserRow = Selectable<PlatformDB['users']>;

export interface NewLedgerEntry {
  tenantId: string;
  /** Signed micro-dollars: positive credits the tenant, negative debits it. */
  amountMicros: bigint;
  kind: LedgerKind;
  /** Makes the posting idempotent: a second posting with the same tenant, kind and reference changes nothing. */
  reference?: string | null;
  memo?: string | null;
  createdBy?: string;
}

export interface TenantTotals {
  credited: bigint;
  purchased: bigint;
  debited: bigint;
  balance: bigint;
  usageCalls: bigint;
  inputTokens: bigint;
  outputTokens: bigint;
  cost: bigint;
  margin: bigint;
}

/**
 * Every SQL statement of the platform API. Construct it on the pool-backed Kysely or on a transaction
 * (`new PlatformStore(trx)`) so several calls commit together.
 */
export class PlatformStore {
  constructor(readonly db: Executor) {}

  // ---- users ---------------------------------------------------------------------------------------

  findUser(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  findUserByEmail(email: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('email', '=', email.toLowerCase()).executeTakeFirst();
  }

  /** Records how the user first signed up; later sign-ins with other providers leave it alone. */
  async recordSignupProvider(userId: string, provider: string, providerAccountId: string): Promise<void> {
    await this.db
      .updateTable('users')
      .set({ provider, provider_id: providerAccountId })
      .where('id', '=', userId)
      .where('provider', 'is', null)
      .execute();
  }

  async setUserRole(userId: string, role: string): Promise<void> {
    await this.db.updateTable('users').set({ role, updated_at: new Date() }).where('id', '=', userId).execute();
  }

  async deleteUser(userId: string): Promise<void> {
    await this.db.deleteFrom('users').where('id', '=', userId).execute();
  }

  async deleteSessionsOfUser(userId: string): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  // ---- tenants -------------------------------------------------------------------------------------

  findTenant(id: string): Promise<TenantRow | undefined> {
    return this.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
  }

  findTenantOfUser(userId: string): Promise<TenantRow | undefined> {
    return this.db.selectFrom('tenants').selectAll().where('user_id', '=', userId).executeTakeFirst();
  }

  /** Locks the tenant row until the transaction ends (lifecycle changes queue on it). */
  lockTenant(id: string): Promise<TenantRow | undefined> {
    return this.db.selectFrom('tenants').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  }

  async insertTenant(id: string, userId: string): Promise<TenantRow> {
    return this.db.insertInto('tenants').values({ id, user_id: userId }).returningAll().executeTakeFirstOrThrow();
  }

  async setTenantStatus(id: string, status: TenantStatus, reason: string | null): Promise<TenantRow | undefined> {
    return this.db
      .updateTable('tenants')
      .set({ status, status_reason: reason, updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  async setRuntimeId(id: string, runtimeId: string | null): Promise<void> {
    await this.db
      .updateTable('tenants')
      .set({ runtime_id: runtimeId, updated_at: new Date() })
      .where('id', '=', id)
      .execute();
  }

  /** Tenants with their user's email, newest first, for the admin list. */
  /** Active tenants that had a runtime: what a restarted platform starts again. */
  async activeTenantsWithRuntime(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('tenants')
      .select('id')
      .where('status', '=', 'active')
      .where('runtime_id', 'is not', null)
      .orderBy('updated_at', 'desc')
      .execute();
    return rows.map((row) => row.id);
  }

  listTenants({
    status,
    limit,
    before,
  }: {
    status?: TenantStatus;
    limit: number;
    before?: { createdAt: string; id: string };
  }) {
    let query = this.db
      .selectFrom('tenants')
      .innerJoin('users', 'users.id', 'tenants.user_id')
      .leftJoin('credits', 'credits.tenant_id', 'tenants.id')
      .select([
        'tenants.id',
        'tenants.user_id',
        'tenants.status',
        'tenants.status_reason',
        'tenants.runtime_id',
        'tenants.created_at',
        'users.email',
        'users.banned',
        'credits.balance_micros',
      ])
      .orderBy('tenants.created_at', 'desc')
      .orderBy('tenants.id', 'desc')
      .limit(limit + 1);
    if (status) query = query.where('tenants.status', '=', status);
    if (before) {
      query = query.where((eb) =>
        eb.or([
          eb('tenants.created_at', '<', new Date(before.createdAt)),
          eb.and([eb('tenants.created_at', '=', new Date(before.createdAt)), eb('tenants.id', '<', before.id)]),
        ]),
      );
    }
    return query.execute();
  }

  async deleteTenant(id: string): Promise<void> {
    await this.db.deleteFrom('tenants').where('id', '=', id).execute();
  }

  // ---- tenant API keys -----------------------------------------------------------------------------

  async insertApiKey(key: { id: string; tenantId: string; hash: string; prefix: string; label: string }) {
    await this.db
      .insertInto('tenant_api_keys')
      .values({ id: key.id, tenant_id: key.tenantId, key_hash: key.hash, key_prefix: key.prefix, label: key.label })
      .execute();
  }

  /** Revokes the tenant's live key for `label` (if any); returns how many were revoked. */
  async revokeApiKeys(tenantId: string, label: string): Promise<number> {
    const result = await this.db
      .updateTable('tenant_api_keys')
      .set({ revoked_at: new Date() })
      .where('tenant_id', '=', tenantId)
      .where('label', '=', label)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  findLiveApiKeyByHash(hash: string) {
    return this.db
      .selectFrom('tenant_api_keys')
      .innerJoin('tenants', 'tenants.id', 'tenant_api_keys.tenant_id')
      .select([
        'tenant_api_keys.id as keyId',
        'tenant_api_keys.label',
        'tenant_api_keys.last_used_at as lastUsedAt',
        'tenants.id as tenantId',
        'tenants.status',
        'tenants.user_id as userId',
      ])
      .where('tenant_api_keys.key_hash', '=', hash)
      .where('tenant_api_keys.revoked_at', 'is', null)
      .executeTakeFirst();
  }

  listApiKeys(tenantId: string) {
    return this.db
      .selectFrom('tenant_api_keys')
      .select(['id', 'key_prefix', 'label', 'created_at', 'last_used_at', 'revoked_at'])
      .where('tenant_id', '=', tenantId)
      .orderBy('created_at', 'desc')
      .execute();
  }

  async touchApiKey(id: string): Promise<void> {
    await this.db.updateTable('tenant_api_keys').set({ last_used_at: new Date() }).where('id', '=', id).execute();
  }

  // ---- credits and ledger --------------------------------------------------------------------------

  async insertCredits(tenantId: string): Promise<void> {
    await this.db.insertInto('credits').values({ tenant_id: tenantId }).execute();
  }

  findCredits(tenantId: string): Promise<CreditsRow | undefined> {
    return this.db.selectFrom('credits').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
  }

  /**
   * Posts one ledger row; the database moves the balance with it (see migrations/002_tenants.sql).
   * With a reference already posted for this tenant and kind, returns the existing row and `created: false`.
   */
  async postLedgerEntry(entry: NewLedgerEntry): Promise<{ entry: LedgerRow; created: boolean }> {
    const inserted = await this.db
      .insertInto('credit_ledger')
      .values({
        tenant_id: entry.tenantId,
        amount_micros: entry.amountMicros,
        kind: entry.kind,
        reference: entry.reference ?? null,
        memo: entry.memo ?? null,
        created_by: entry.createdBy ?? 'system',
      })
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { entry: inserted, created: true };
    if (entry.reference == null) throw new Error('ledger entry was not inserted');
    const existing = await this.db
      .selectFrom('credit_ledger')
      .selectAll()
      .where('tenant_id', '=', entry.tenantId)
      .where('kind', '=', entry.kind)
      .where('reference', '=', entry.reference)
      .executeTakeFirstOrThrow();
    return { entry: existing, created: false };
  }

  listLedger(tenantId: string, { limit, beforeId }: { limit: number; beforeId?: bigint }) {
    let query = this.db
      .selectFrom('credit_ledger')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (beforeId !== undefined) query = query.where('id', '<', beforeId);
    return query.execute();
  }

  /** Lifetime totals of a tenant, for its closure record. */
  async tenantTotals(tenantId: string): Promise<TenantTotals> {
    const ledger = await this.db
      .selectFrom('credit_ledger')
      .select([
        // Holds of the LLM proxy and their releases are not money credited or spent: leave them out.
        sql<string>`coalesce(sum(amount_micros) filter (where amount_micros > 0 and kind <> 'reservation_release'), 0)`.as(
          'credited',
        ),
        sql<string>`coalesce(sum(amount_micros) filter (where kind = 'purchase'), 0)`.as('purchased'),
        sql<string>`coalesce(-sum(amount_micros) filter (where amount_micros < 0 and kind <> 'reservation'), 0)`.as(
          'debited',
        ),
      ])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    const usage = await this.db
      .selectFrom('usage_logs')
      .select([
        sql<string>`count(*)`.as('calls'),
        sql<string>`coalesce(sum(input_tokens), 0)`.as('input'),
        sql<string>`coalesce(sum(output_tokens), 0)`.as('output'),
        sql<string>`coalesce(sum(cost_micros), 0)`.as('cost'),
        sql<string>`coalesce(sum(margin_micros), 0)`.as('margin'),
      ])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    const credits = await this.findCredits(tenantId);
    return {
      credited: BigInt(ledger.credited),
      purchased: BigInt(ledger.purchased),
      debited: BigInt(ledger.debited),
      balance: credits?.balance_micros ?? 0n,
      usageCalls: BigInt(usage.calls),
      inputTokens: BigInt(usage.input),
      outputTokens: BigInt(usage.output),
      cost: BigInt(usage.cost),
      margin: BigInt(usage.margin),
    };
  }

  async insertClosure(
    tenant: TenantRow,
    reason: 'user_deleted' | 'admin_deleted',
    totals: TenantTotals,
  ): Promise<void> {
    await this.db
      .insertInto('tenant_closures')
      .values({
        tenant_id: tenant.id,
        reason,
        tenant_created_at: tenant.created_at,
        credited_micros: totals.credited,
        purchased_micros: totals.purchased,
        debited_micros: totals.debited,
        final_balance_micros: totals.balance,
        usage_calls: totals.usageCalls,
        input_tokens: totals.inputTokens,
        output_tokens: totals.outputTokens,
        cost_micros: totals.cost,
        margin_micros: totals.margin,
      })
      .execute();
  }

  // ---- conversations and messages ------------------------------------------------------------------

  insertConversation(c: { id: string; tenantId: string; title: string }): Promise<ConversationRow> {
    return this.db
      .insertInto('conversations')
      .values({ id: c.id, tenant_id: c.tenantId, title: c.title })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Only ever by tenant and id together: another tenant's conversation is simply not found. */
  findConversation(tenantId: string, id: string): Promise<ConversationRow | undefined> {
    return this.db
      .selectFrom('conversations')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  listConversations(
    tenantId: string,
    { limit, before }: { limit: number; before?: { updatedAt: string; id: string } },
  ) {
    let query = this.db
      .selectFrom('conversations')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .orderBy('updated_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (before) {
      query = query.where((eb) =>
        eb.or([
          eb('updated_at', '<', new Date(before.updatedAt)),
          eb.and([eb('updated_at', '=', new Date(before.updatedAt)), eb('id', '<', before.id)]),
        ]),
      );
    }
    return query.execute();
  }

  async renameConversation(tenantId: string, id: string, title: string): Promise<ConversationRow | undefined> {
    return this.db
      .updateTable('conversations')
      .set({ title })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  async deleteConversation(tenantId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('conversations')
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async insertMessage(m: {
    id: string;
    tenantId: string;
    conversationId: string;
    role: MessageRole;
    content: string;
    channel: Channel;
    metadata: Record<string, unknown>;
  }): Promise<MessageRow> {
    const row = await this.db
      .insertInto('messages')
      .values({
        id: m.id,
        tenant_id: m.tenantId,
        conversation_id: m.conversationId,
        role: m.role,
        content: m.content,
        channel: m.channel,
        metadata: JSON.stringify(m.metadata),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await this.db
      .updateTable('conversations')
      .set({ updated_at: row.created_at })
      .where('id', '=', m.conversationId)
      .where('tenant_id', '=', m.tenantId)
      .execute();
    return row;
  }

  /** Messages in arrival order after `afterSeq`. */
  listMessages(tenantId: string, conversationId: string, { limit, afterSeq }: { limit: number; afterSeq?: bigint }) {
    let query = this.db
      .selectFrom('messages')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('conversation_id', '=', conversationId)
      .orderBy('seq', 'asc')
      .limit(limit + 1);
    if (afterSeq !== undefined) query = query.where('seq', '>', afterSeq);
    return query.execute();
  }

  /** The newest `limit` messages of a conversation, oldest first. */
  async recentMessages(tenantId: string, conversationId: string, limit: number): Promise<MessageRow[]> {
    const rows = await this.db
      .selectFrom('messages')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('conversation_id', '=', conversationId)
      .orderBy('seq', 'desc')
      .limit(limit)
      .execute();
    return rows.reverse();
  }

  /** The database's clock (usage rows are stamped by it). */
  async now(): Promise<Date> {
    const { rows } = await sql<{ now: Date }>`select now() as now`.execute(this.db);
    return rows[0]?.now ?? new Date();
  }

  /** LLM calls booked for a conversation since a moment, and what they were charged (cost + margin). */
  async usageSince(
    tenantId: string,
    conversationId: string,
    since: Date,
  ): Promise<{ calls: number; chargedMicros: bigint }> {
    const row = await this.db
      .selectFrom('usage_logs')
      .select([
        sql<string>`count(*)`.as('calls'),
        sql<string>`coalesce(sum(cost_micros + margin_micros), 0)`.as('charged'),
      ])
      .where('tenant_id', '=', tenantId)
      .where('conversation_id', '=', conversationId)
      .where('created_at', '>=', since)
      .executeTakeFirstOrThrow();
    return { calls: Number(row.calls), chargedMicros: BigInt(row.charged) };
  }

  // ---- models --------------------------------------------------------------------------------------

  listModels({ enabledOnly }: { enabledOnly: boolean }): Promise<ModelRow[]> {
    let query = this.db.selectFrom('models').selectAll().orderBy('provider').orderBy('name');
    if (enabledOnly) query = query.where('enabled', '=', true);
    return query.execute();
  }

  findModelByName(name: string): Promise<ModelRow | undefined> {
    return this.db.selectFrom('models').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async countModels(): Promise<number> {
    const row = await this.db.selectFrom('models').select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Inserts a model unless one of that name exists (an admin's later edits are never overwritten). */
  async insertModelIfMissing(model: Omit<ModelRow, 'created_at' | 'updated_at'>): Promise<boolean> {
    const inserted = await this.db
      .insertInto('models')
      .values(model)
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    return inserted !== undefined;
  }
}
