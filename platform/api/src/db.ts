import { AsyncLocalStorage } from 'node:async_hooks';
import { fileURLToPath } from 'node:url';
import type { ColumnType, Generated, Transaction } from '@agentstack/db';
import { Kysely, PostgresDialect, type TransactionBuilder } from 'kysely';
import type pg from 'pg';

export const migrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;

/** The tables this service owns (`migrations/`), as Kysely sees them. Better Auth's are read-only here. */
export interface PlatformDB {
  users: {
    id: string;
    name: string;
    email: string;
    email_verified: boolean;
    image: string | null;
    created_at: CreatedAt;
    updated_at: Timestamp;
    provider: string | null;
    provider_id: string | null;
    two_factor_enabled: Generated<boolean>;
    role: Generated<string>;
    banned: Generated<boolean>;
    ban_reason: string | null;
    ban_expires: Date | null;
  };
  sessions: {
    id: string;
    user_id: string;
    token: string;
    expires_at: Date;
    created_at: CreatedAt;
    updated_at: Timestamp;
    ip_address: string | null;
    user_agent: string | null;
    impersonated_by: string | null;
  };
  accounts: {
    id: string;
    user_id: string;
    account_id: string;
    provider_id: string;
    password: string | null;
    created_at: CreatedAt;
    updated_at: Timestamp;
  };
  two_factors: { id: string; user_id: string; secret: string; backup_codes: string };
  verifications: { id: string; identifier: string; value: string; expires_at: Date };
  rate_limits: { id: string; key: string; count: number; last_request: bigint };
  tenants: {
    id: string;
    user_id: string;
    status: Generated<TenantStatus>;
    status_reason: string | null;
    runtime_id: string | null;
    created_at: CreatedAt;
    updated_at: Timestamp;
  };
  tenant_api_keys: {
    id: string;
    tenant_id: string;
    key_hash: string;
    key_prefix: string;
    label: Generated<string>;
    created_at: CreatedAt;
    last_used_at: Date | null;
    revoked_at: Date | null;
  };
  credits: {
    tenant_id: string;
    balance_micros: Generated<bigint>;
    free_credit_used: Generated<boolean>;
    last_entry_id: bigint | null;
    updated_at: Timestamp;
  };
  credit_ledger: {
    id: Generated<bigint>;
    tenant_id: string;
    amount_micros: bigint;
    balance_after_micros: Generated<bigint>;
    kind: LedgerKind;
    reference: string | null;
    memo: string | null;
    created_by: Generated<string>;
    created_at: CreatedAt;
  };
  tenant_closures: {
    tenant_id: string;
    reason: 'user_deleted' | 'admin_deleted';
    tenant_created_at: Date;
    closed_at: CreatedAt;
    credited_micros: bigint;
    purchased_micros: bigint;
    debited_micros: bigint;
    final_balance_micros: bigint;
    usage_calls: bigint;
    input_tokens: bigint;
    output_tokens: bigint;
    cost_micros: bigint;
    margin_micros: bigint;
  };
  conversations: {
    id: string;
    tenant_id: string;
    title: Generated<string>;
    created_at: CreatedAt;
    updated_at: Timestamp;
  };
  messages: {
    id: string;
    seq: Generated<bigint>;
    conversation_id: string;
    tenant_id: string;
    role: MessageRole;
    content: string;
    channel: Generated<Channel>;
    metadata: ColumnType<Record<string, unknown>, string | undefined, string>;
    created_at: CreatedAt;
  };
  models: {
    id: string;
    name: string;
    display_name: string;
    provider: ModelProvider;
    upstream_model: string;
    provider_cost_input_per_m_micros: bigint;
    provider_cost_output_per_m_micros: bigint;
    markup_pct: Generated<number>;
    enabled: Generated<boolean>;
    demo: Generated<boolean>;
    context_window: number | null;
    max_output_tokens: number;
    created_at: CreatedAt;
    updated_at: Timestamp;
  };
  usage_logs: {
    id: string;
    tenant_id: string;
    model: string;
    model_id: string | null;
    provider: string;
    input_tokens: number;
    output_tokens: number;
    cost_micros: bigint;
    margin_micros: bigint;
    conversation_id: string | null;
    request_id: string | null;
    created_at: CreatedAt;
  };
}

export type TenantStatus = 'active' | 'paused' | 'suspended';
export type LedgerKind =
  | 'free_credit'
  | 'purchase'
  | 'admin_grant'
  | 'refund'
  | 'reservation_release'
  | 'usage'
  | 'reservation'
  | 'adjustment';
export type MessageRole = 'user' | 'assistant' | 'system' | 'tool';
export type Channel = 'web' | 'telegram' | 'whatsapp';
export type ModelProvider = 'openai' | 'anthropic' | 'google' | 'openai-compatible';

/** Anything queries can run on: the pool-backed Kysely or a transaction of it. */
export type Executor = Kysely<PlatformDB>;

interface TransactionScope {
  trx: Transaction<PlatformDB>;
  afterCommit: (() => Promise<void>)[];
}

/**
 * A Kysely whose transactions are visible to the code running inside them, wherever it was called from.
 *
 * Better Auth opens the transaction of a sign-up itself and runs our database hooks inside it; handing it
 * this instance lets those hooks write the tenant rows on the very same connection (`currentTransaction()`),
 * so user, account, session, tenant, credits and key commit or roll back together. Work that must wait for
 * the commit (asking for a runtime) is queued with `afterCommit` and dropped on rollback.
 */
export class TransactionScopedKysely extends Kysely<PlatformDB> {
  readonly #scope = new AsyncLocalStorage<TransactionScope>();
  readonly #onAfterCommitError: (err: unknown) => void;

  constructor(pool: pg.Pool, onAfterCommitError: (err: unknown) => void) {
    super({ dialect: new PostgresDialect({ pool }) });
    this.#onAfterCommitError = onAfterCommitError;
  }

  /** The transaction the caller is running inside (opened through this instance), if any. */
  currentTransaction(): Transaction<PlatformDB> | undefined {
    return this.#scope.getStore()?.trx;
  }

  /** Runs `task` once the current transaction has committed; throws outside a transaction. */
  afterCommit(task: () => Promise<void>): void {
    const scope = this.#scope.getStore();
    if (!scope) throw new Error('afterCommit called outside a transaction');
    scope.afterCommit.push(task);
  }

  override transaction(): TransactionBuilder<PlatformDB> {
    return this.#scoped(super.transaction());
  }

  #scoped(builder: TransactionBuilder<PlatformDB>): TransactionBuilder<PlatformDB> {
    const execute = builder.execute.bind(builder);
    const setIsolationLevel = builder.setIsolationLevel.bind(builder);
    const setAccessMode = builder.setAccessMode.bind(builder);
    const scope = this.#scope;
    const onError = this.#onAfterCommitError;
    // Kysely's builder is a plain object: replacing its methods keeps every option it carries.
    builder.setIsolationLevel = (level) => this.#scoped(setIsolationLevel(level));
    builder.setAccessMode = (mode) => this.#scoped(setAccessMode(mode));
    builder.execute = async <T>(callback: (trx: Transaction<PlatformDB>) => Promise<T>): Promise<T> => {
      const afterCommit: (() => Promise<void>)[] = [];
      const result = await execute((trx) => scope.run({ trx, afterCommit }, () => callback(trx)));
      for (const task of afterCommit) {
        try {
          await task();
        } catch (err) {
          onError(err);
        }
      }
      return result;
    };
    return builder;
  }
}
