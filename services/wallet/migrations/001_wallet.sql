-- wallet.sh: managed wallets, their policy, the execution journal, pauses and breakers, funding requests,
-- notifications, observed incoming transfers, and small operational tables.

CREATE TABLE wallets (
  address            text        PRIMARY KEY,            -- EIP-55
  chain              text        NOT NULL,
  label              text,
  -- The private key, AES-256-GCM sealed with a key derived from the master secret; AAD: the address.
  sealed_key         text        NOT NULL,
  owner              text,                               -- EIP-55; bound by the first paid request with the claim token
  claim_token_hash   text        UNIQUE,                 -- sha256 hex; NULL once used
  claim_expires_at   timestamptz,
  claimed_at         timestamptz,
  agent_token_hash   text        NOT NULL UNIQUE,        -- sha256 hex
  status             text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
  policy             jsonb       NOT NULL DEFAULT '{}',
  policy_updated_at  timestamptz,
  created_at         timestamptz NOT NULL,
  deactivated_at     timestamptz
);
CREATE INDEX wallets_owner ON wallets (owner, created_at DESC, address DESC) WHERE owner IS NOT NULL;

-- Every money movement, written before it is sent: intent → submitted (tx hash) → confirmed | failed.
CREATE TABLE journal (
  id               text        PRIMARY KEY,
  wallet           text        NOT NULL REFERENCES wallets (address),
  kind             text        NOT NULL CHECK (kind IN ('send', 'swap', 'pay', 'fee', 'fund', 'sweep')),
  direction        text        NOT NULL CHECK (direction IN ('out', 'in')),
  asset            text        NOT NULL CHECK (asset IN ('USDC', 'ETH')),
  amount           numeric(78, 0) NOT NULL CHECK (amount > 0),  -- atomic units of `asset` (wei for ETH)
  usdc_value       bigint      NOT NULL,                        -- what the policy counted, atomic USDC
  counts           boolean     NOT NULL DEFAULT true,           -- counted by the policy (false: sweeps, incoming)
  counterparty     text,                                        -- recipient / payTo / funder (lower case)
  service          text,                                        -- host of a paid service (lower case)
  status           text        NOT NULL CHECK (status IN ('intent', 'submitted', 'confirmed', 'failed')),
  -- How it executes: an EIP-3009 authorization we relay, one a third party settles (fees, pay), a raw tx,
  -- or the two-step USDC→ETH swap (pull by authorization, then the relayer swaps).
  method           text        NOT NULL CHECK (method IN ('relay3009', 'external3009', 'rawtx', 'swap')),
  auth             jsonb,      -- {from,to,value,validAfter,validBefore,nonce,signature}
  raw_tx           text,       -- signed raw transaction (rawtx method)
  tx_hash          text,
  steps            jsonb       NOT NULL DEFAULT '[]',           -- swap: [{stage, hash, raw?}]
  details          jsonb       NOT NULL DEFAULT '{}',
  error            text,
  actor            text        NOT NULL CHECK (actor IN ('owner', 'agent', 'service')),
  caller           text,
  idempotency_ref  text,
  -- The process driving it (its advisory-lock key); NULL when nobody is: the reconciler may take it.
  executor         bigint,
  fee_settled      boolean     NOT NULL DEFAULT true,           -- false until the route's own fee settled
  usage_day        date        NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  submitted_at     timestamptz,
  finished_at      timestamptz
);
CREATE INDEX journal_history ON journal (wallet, created_at DESC, id DESC);
CREATE INDEX journal_usage ON journal (wallet, usage_day) WHERE status <> 'failed' AND counts;
CREATE INDEX journal_pending ON journal (created_at) WHERE status IN ('intent', 'submitted');
CREATE INDEX journal_tx ON journal (tx_hash) WHERE tx_hash IS NOT NULL;
CREATE UNIQUE INDEX journal_idempotency ON journal (wallet, idempotency_ref) WHERE idempotency_ref IS NOT NULL;

CREATE TABLE pauses (
  wallet     text        NOT NULL REFERENCES wallets (address),
  scope      text        NOT NULL CHECK (scope IN ('all', 'send', 'swap', 'pay')),
  reason     text        NOT NULL,
  source     text        NOT NULL CHECK (source IN ('owner', 'breaker', 'policy')),
  paused_at  timestamptz NOT NULL,
  PRIMARY KEY (wallet, scope)
);

CREATE TABLE breakers (
  wallet                text        NOT NULL REFERENCES wallets (address),
  scope                 text        NOT NULL CHECK (scope IN ('send', 'swap', 'pay')),
  consecutive_failures  integer     NOT NULL DEFAULT 0,
  last_error            text,
  updated_at            timestamptz NOT NULL,
  PRIMARY KEY (wallet, scope)
);

-- The operator's kill switch (one row), shared by every replica.
CREATE TABLE operator_state (
  id           boolean     PRIMARY KEY DEFAULT true CHECK (id),
  kill_switch  boolean     NOT NULL DEFAULT false,
  reason       text,
  changed_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO operator_state (id) VALUES (true);

CREATE TABLE fund_requests (
  id              text        PRIMARY KEY,
  wallet          text        NOT NULL REFERENCES wallets (address),
  owner           text        NOT NULL,           -- who is asked (the owner when the request was made)
  amount          bigint      NOT NULL CHECK (amount > 0),
  reason          text        NOT NULL,
  status          text        NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
  requested_by    text        NOT NULL CHECK (requested_by IN ('owner', 'agent')),
  decision_reason text,
  journal_id      text        REFERENCES journal (id),
  tx_hash         text,
  created_at      timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  decided_at      timestamptz
);
CREATE INDEX fund_requests_wallet ON fund_requests (wallet, created_at DESC, id DESC);
CREATE INDEX fund_requests_expiry ON fund_requests (expires_at) WHERE status = 'pending';

-- Where the owner is told about funding requests and pauses (the webhook itself lives in webhook_targets).
CREATE TABLE notification_settings (
  wallet             text        PRIMARY KEY REFERENCES wallets (address),
  webhook_target_id  text,
  email              text,
  updated_at         timestamptz NOT NULL
);

CREATE TABLE email_outbox (
  id               text        PRIMARY KEY,
  wallet           text        NOT NULL REFERENCES wallets (address),
  recipient        text        NOT NULL,
  subject          text        NOT NULL,
  body             text        NOT NULL,
  event_type       text        NOT NULL,
  status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  locked_until     timestamptz,
  last_error       text,
  relay_message_id text,
  created_at       timestamptz NOT NULL,
  sent_at          timestamptz
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_wallet ON email_outbox (wallet, created_at DESC, id DESC);

-- The relay.sh mailbox notification emails are sent from (one, recreated when it expires).
CREATE TABLE relay_mailbox (
  id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
  mailbox_id  text        NOT NULL,
  address     text        NOT NULL,
  expires_at  timestamptz NOT NULL
);

-- USDC transfers into managed wallets, read from the chain's Transfer logs.
CREATE TABLE incoming_transfers (
  tx_hash       text        NOT NULL,
  log_index     integer     NOT NULL,
  wallet        text        NOT NULL REFERENCES wallets (address),
  from_address  text        NOT NULL,
  amount        numeric(78, 0) NOT NULL,
  block_number  bigint      NOT NULL,
  observed_at   timestamptz NOT NULL,
  PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX incoming_transfers_wallet ON incoming_transfers (wallet, observed_at DESC, tx_hash DESC, log_index DESC);

CREATE TABLE indexer_state (
  name        text   PRIMARY KEY,
  last_block  bigint NOT NULL
);

-- Fixed-window counters (wallet creation per client IP).
CREATE TABLE rate_limits (
  key           text        NOT NULL,
  window_start  timestamptz NOT NULL,
  count         integer     NOT NULL,
  PRIMARY KEY (key, window_start)
);

-- Idempotency-Key for the free create route, scoped to client IP; the first response is kept sealed
-- (it carries the one-time tokens) for 24 hours.
CREATE TABLE create_idempotency (
  scope          text        PRIMARY KEY,          -- sha256(ip | key)
  request_hash   text        NOT NULL,
  sealed_response text,
  created_at     timestamptz NOT NULL
);
