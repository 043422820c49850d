-- relay.sh: mailboxes owned by x402 payers, custom domains, stored messages (embedded backend),
-- webhooks with an outbox of deliveries, and per-day send counters.
-- Timestamps that page cursors carry are kept to the millisecond, the precision a cursor round-trips.

-- Domains: the operator's service domains (owner NULL) and payers' custom domains. Several payers may
-- register the same name; only the one whose DKIM record is found in DNS gets it verified, so a squatter
-- cannot block the real owner.
CREATE TABLE domains (
  id                  text        PRIMARY KEY,
  owner               text,
  name                text        NOT NULL,
  dkim_selector       text        NOT NULL,
  dkim_public_key     text        NOT NULL,
  dkim_private_key    text        NOT NULL, -- sealed with the service's secret box, never returned
  verified_at         timestamptz,
  last_checked_at     timestamptz,
  last_check          jsonb,
  created_at          timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
  CHECK (name = lower(name))
);
CREATE UNIQUE INDEX domains_service_name ON domains (name) WHERE owner IS NULL;
CREATE UNIQUE INDEX domains_owner_name ON domains (owner, name) WHERE owner IS NOT NULL;
CREATE UNIQUE INDEX domains_verified_name ON domains (name) WHERE verified_at IS NOT NULL AND owner IS NOT NULL;
CREATE INDEX domains_owner_created ON domains (owner, created_at DESC, id DESC);

CREATE TABLE mailboxes (
  id                  text        PRIMARY KEY,
  owner               text        NOT NULL,
  address             text        NOT NULL UNIQUE,
  local_part          text        NOT NULL,
  domain              text        NOT NULL,
  domain_id           text        REFERENCES domains (id) ON DELETE RESTRICT,
  -- The mail backend's own handle for the mailbox (e.g. a Stalwart account id) and its login secret.
  backend_ref         text,
  backend_login       text,
  backend_secret      text, -- sealed
  expires_at          timestamptz NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
  CHECK (address = lower(address))
);
CREATE INDEX mailboxes_owner_created ON mailboxes (owner, created_at DESC, id DESC);
CREATE INDEX mailboxes_expiry ON mailboxes (expires_at);

-- Messages received by the embedded backend, stored whole in one transaction with their attachments.
CREATE TABLE messages (
  id                  text        PRIMARY KEY,
  mailbox_id          text        NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
  message_id_header   text,
  from_address        text,
  from_name           text,
  to_addresses        jsonb       NOT NULL DEFAULT '[]',
  cc_addresses        jsonb       NOT NULL DEFAULT '[]',
  reply_to            jsonb       NOT NULL DEFAULT '[]',
  subject             text,
  sent_at             timestamptz,
  envelope_from       text,
  envelope_to         text        NOT NULL,
  headers             jsonb       NOT NULL,
  text_body           text,
  html_body           text,
  size_bytes          integer     NOT NULL,
  auth_results        jsonb       NOT NULL,
  read_at             timestamptz,
  received_at         timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp())
);
CREATE INDEX messages_mailbox_received ON messages (mailbox_id, received_at DESC, id DESC);
CREATE INDEX messages_mailbox_from ON messages (mailbox_id, lower(from_address));

CREATE TABLE attachments (
  id                  text        PRIMARY KEY,
  message_id          text        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  position            integer     NOT NULL,
  filename            text,
  content_type        text        NOT NULL,
  disposition         text,
  content_id          text,
  size_bytes          integer     NOT NULL,
  sha256              text        NOT NULL,
  content             bytea       NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id, position);

CREATE TABLE webhooks (
  id                  text        PRIMARY KEY,
  mailbox_id          text        NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
  url                 text        NOT NULL,
  secret              text        NOT NULL, -- sealed
  status              text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  consecutive_failures integer    NOT NULL DEFAULT 0,
  disabled_reason     text,
  disabled_at         timestamptz,
  last_success_at     timestamptz,
  last_failure_at     timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_mailbox ON webhooks (mailbox_id, created_at);

-- The outbox: written in the same transaction as the message it announces, delivered by a worker that
-- claims rows with FOR UPDATE SKIP LOCKED (safe with several replicas), kept as the delivery log.
CREATE TABLE webhook_deliveries (
  id                  text        PRIMARY KEY,
  webhook_id          text        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  mailbox_id          text        NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
  event               text        NOT NULL,
  payload             jsonb       NOT NULL,
  status              text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts            integer     NOT NULL DEFAULT 0,
  next_attempt_at     timestamptz NOT NULL DEFAULT now(),
  last_attempt_at     timestamptz,
  last_status_code    integer,
  last_error          text,
  delivered_at        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp())
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_mailbox ON webhook_deliveries (mailbox_id, created_at DESC, id DESC);

-- Sends per mailbox per UTC day; the conditional upsert is the rate limit (atomic under concurrency).
CREATE TABLE send_counters (
  mailbox_id          text        NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
  day                 date        NOT NULL,
  count               integer     NOT NULL,
  PRIMARY KEY (mailbox_id, day)
);
