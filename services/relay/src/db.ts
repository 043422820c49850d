import type { ColumnType, Generated, Selectable } from '@agentstack/db';

/** Row types of relay's database (migrations/*.sql), for Kysely. */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface DomainsTable {
  id: string;
  owner: string | null;
  name: string;
  dkim_selector: string;
  dkim_public_key: string;
  dkim_private_key: string;
  verified_at: Date | null;
  last_checked_at: Date | null;
  last_check: Json<unknown> | null;
  created_at: Timestamp;
}

export interface MailboxesTable {
  id: string;
  owner: string;
  address: string;
  local_part: string;
  domain: string;
  domain_id: string | null;
  backend_ref: string | null;
  backend_login: string | null;
  backend_secret: string | null;
  expires_at: Date;
  created_at: Timestamp;
}

export interface AddressJson {
  address: string;
  name: string;
}

export interface MessagesTable {
  id: string;
  mailbox_id: string;
  message_id_header: string | null;
  from_address: string | null;
  from_name: string | null;
  to_addresses: Json<AddressJson[]>;
  cc_addresses: Json<AddressJson[]>;
  reply_to: Json<AddressJson[]>;
  subject: string | null;
  sent_at: Date | null;
  envelope_from: string | null;
  envelope_to: string;
  headers: Json<[string, string][]>;
  text_body: string | null;
  html_body: string | null;
  size_bytes: number;
  auth_results: Json<unknown>;
  read_at: Date | null;
  received_at: Timestamp;
}

export interface AttachmentsTable {
  id: string;
  message_id: string;
  position: number;
  filename: string | null;
  content_type: string;
  disposition: string | null;
  content_id: string | null;
  size_bytes: number;
  sha256: string;
  content: Buffer;
}

export interface WebhooksTable {
  id: string;
  mailbox_id: string;
  url: string;
  secret: string;
  status: Generated<'active' | 'disabled'>;
  consecutive_failures: Generated<number>;
  disabled_reason: string | null;
  disabled_at: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  created_at: Timestamp;
}

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  mailbox_id: string;
  event: string;
  payload: Json<unknown>;
  status: Generated<'pending' | 'delivered' | 'failed'>;
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: Timestamp;
}

export interface SendCountersTable {
  mailbox_id: string;
  day: string;
  count: number;
}

export interface RelayDatabase {
  domains: DomainsTable;
  mailboxes: MailboxesTable;
  messages: MessagesTable;
  attachments: AttachmentsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  send_counters: SendCountersTable;
}

export type MailboxRow = Selectable<MailboxesTable>;
export type DomainRow = Selectable<DomainsTable>;
export type WebhookRow = Selectable<WebhooksTable>;
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
