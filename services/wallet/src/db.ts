import type { Queryable } from '@agentstack/webhooks';
import { type ColumnType, CompiledQuery, type Generated, type Kysely, type Selectable } from 'kysely';

/** jsonb: read as the value, written as a JSON string (pg would turn JS arrays into PostgreSQL arrays). */
type Json<T> = ColumnType<T, string, string>;

/** Row types of the wallet database, as pg returns them (int8 → bigint, numeric → string). */
export interface WalletsTable {
  address: string;
  chain: string;
  label: string | null;
  sealed_key: string;
  owner: string | null;
  claim_token_hash: string | null;
  claim_expires_at: Date | null;
  claimed_at: Date | null;
  agent_token_hash: string;
  status: Generated<'active' | 'deactivated'>;
  policy: Json<unknown>;
  policy_updated_at: Date | null;
  created_at: Date;
  deactivated_at: Date | null;
}

export type JournalStatus = 'intent' | 'submitted' | 'confirmed' | 'failed';
export type JournalKind = 'send' | 'swap' | 'pay' | 'fee' | 'fund' | 'sweep';
export type JournalMethod = 'relay3009' | 'external3009' | 'rawtx' | 'swap';
export type Asset = 'USDC' | 'ETH';

/** An EIP-3009 authorization as stored (all strings). */
export interface StoredAuthorization {
  from: string;
  to: string;
  value: string;
  validAfter: string;
  validBefore: string;
  nonce: string;
  signature: string;
}

export interface SwapStep {
  stage: 'pull' | 'swap' | 'refund';
  hash: string;
  /** The signed transaction, recorded before it is sent (relayer steps). */
  raw?: string;
  /** The pull's USDC has arrived. */
  done?: boolean;
}

export interface JournalTable {
  id: string;
  wallet: string;
  kind: JournalKind;
  direction: 'out' | 'in';
  asset: Asset;
  amount: string;
  usdc_value: bigint;
  counts: boolean;
  counterparty: string | null;
  service: string | null;
  status: JournalStatus;
  method: JournalMethod;
  auth: ColumnType<StoredAuthorization | null, string | null, string | null>;
  raw_tx: string | null;
  tx_hash: string | null;
  steps: Json<SwapStep[]>;
  details: Json<Record<string, unknown>>;
  error: string | null;
  actor: 'owner' | 'agent' | 'service';
  caller: string | null;
  idempotency_ref: string | null;
  executor: bigint | null;
  fee_settled: boolean;
  usage_day: string;
  created_at: Date;
  updated_at: Date;
  submitted_at: Date | null;
  finished_at: Date | null;
}

export interface PausesTable {
  wallet: string;
  scope: 'all' | 'send' | 'swap' | 'pay';
  reason: string;
  source: 'owner' | 'breaker' | 'policy';
  paused_at: Date;
}

export interface BreakersTable {
  wallet: string;
  scope: 'send' | 'swap' | 'pay';
  consecutive_failures: number;
  last_error: string | null;
  updated_at: Date;
}

export interface OperatorStateTable {
  id: boolean;
  kill_switch: boolean;
  reason: string | null;
  changed_at: Date;
}

export interface FundRequestsTable {
  id: string;
  wallet: string;
  owner: string;
  amount: bigint;
  reason: string;
  status: 'pending' | 'approved' | 'denied' | 'expired';
  requested_by: 'owner' | 'agent';
  decision_reason: string | null;
  journal_id: string | null;
  tx_hash: string | null;
  created_at: Date;
  expires_at: Date;
  decided_at: Date | null;
}

export interface NotificationSettingsTable {
  wallet: string;
  webhook_target_id: string | null;
  email: string | null;
  updated_at: Date;
}

export interface EmailOutboxTable {
  id: string;
  wallet: string;
  recipient: string;
  subject: string;
  body: string;
  event_type: string;
  status: Generated<'pending' | 'sent' | 'failed'>;
  attempts: Generated<number>;
  next_attempt_at: Date;
  locked_until: Date | null;
  last_error: string | null;
  relay_message_id: string | null;
  created_at: Date;
  sent_at: Date | null;
}

export interface RelayMailboxTable {
  id: boolean;
  mailbox_id: string;
  address: string;
  expires_at: Date;
}

export interface IncomingTransfersTable {
  tx_hash: string;
  log_index: number;
  wallet: string;
  from_address: string;
  amount: string;
  block_number: bigint;
  observed_at: Date;
}

export interface IndexerStateTable {
  name: string;
  last_block: bigint;
}

export interface RateLimitsTable {
  key: string;
  window_start: Date;
  count: number;
}

export interface CreateIdempotencyTable {
  scope: string;
  request_hash: string;
  sealed_response: string | null;
  created_at: Date;
}

export interface WalletDB {
  wallets: WalletsTable;
  journal: JournalTable;
  pauses: PausesTable;
  breakers: BreakersTable;
  operator_state: OperatorStateTable;
  fund_requests: FundRequestsTable;
  notification_settings: NotificationSettingsTable;
  email_outbox: EmailOutboxTable;
  relay_mailbox: RelayMailboxTable;
  incoming_transfers: IncomingTransfersTable;
  indexer_state: IndexerStateTable;
  rate_limits: RateLimitsTable;
  create_idempotency: CreateIdempotencyTable;
}

export type WalletRow = Selectable<WalletsTable>;
export type JournalRow = Selectable<JournalTable>;
export type FundRequestRow = Selectable<FundRequestsTable>;

/** Lets pg-style helpers (the webhook outbox) write inside a Kysely transaction. */
export function queryableOf(db: Kysely<WalletDB>): Queryable {
  return {
    async query(text, values = []) {
      const result = await db.executeQuery(CompiledQuery.raw(text, values));
      return {
        rows: result.rows as unknown[] as never[],
        rowCount: Number(result.numAffectedRows ?? result.rows.length),
      };
    },
  };
}
