-- spawn.sh: deposits, servers, SSH keys, actions, warning webhooks.
-- Money is atomic USDC (6 decimals) in bigint; every change of a balance is a ledger row.

-- One row per wallet. `available` funds new servers and is what refunds return to; `reserved` is the sum of
-- the deposits held by that wallet's live servers. Neither ever goes negative.
CREATE TABLE accounts (
  owner       text        PRIMARY KEY,
  available   bigint      NOT NULL DEFAULT 0 CHECK (available >= 0),
  reserved    bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger (
  id               bigserial   PRIMARY KEY,
  owner            text        NOT NULL REFERENCES accounts (owner),
  server_id        text,
  -- deposit: paid in (available +); reserve: available → server deposit; burn: a day charged from a
  -- server deposit (reserved −); topup: available → a server's deposit; refund: server deposit → available;
  -- fee_credit: a route fee credited back after its effect failed.
  kind             text        NOT NULL CHECK (kind IN ('deposit', 'reserve', 'burn', 'topup', 'refund', 'fee_credit')),
  amount           bigint      NOT NULL CHECK (amount > 0),
  available_after  bigint      NOT NULL,
  reserved_after   bigint      NOT NULL,
  -- The x402 settlement of a deposit, the route of a fee credit, …
  reference        text,
  -- The UTC day a burn pays for.
  day              date,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_owner ON ledger (owner, id DESC);
-- The sweeper charges each server at most once per day, however often (and on however many replicas) it runs.
CREATE UNIQUE INDEX ledger_burn_once ON ledger (server_id, day) WHERE kind = 'burn';
-- A settled payment is credited once.
CREATE UNIQUE INDEX ledger_deposit_once ON ledger (reference) WHERE kind IN ('deposit', 'fee_credit');

CREATE TABLE ssh_keys (
  id           text        PRIMARY KEY,
  owner        text        NOT NULL,
  name         text        NOT NULL,
  public_key   text        NOT NULL,
  fingerprint  text        NOT NULL,
  md5          text        NOT NULL,
  key_type     text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (owner, name),
  UNIQUE (owner, fingerprint)
);
CREATE INDEX ssh_keys_md5 ON ssh_keys (md5);

CREATE TABLE servers (
  id                 text        PRIMARY KEY,
  owner              text        NOT NULL,
  name               text        NOT NULL,
  type               text        NOT NULL,
  image              text        NOT NULL,
  location           text        NOT NULL,
  provider           text        NOT NULL,
  provider_id        text,
  status             text        NOT NULL CHECK (status IN ('initializing', 'running', 'stopping', 'off', 'destroying',
                                                            'migrating', 'rebuilding', 'unknown', 'destroyed')),
  ipv4               text,
  ipv6               text,
  ssh_host           text,
  ssh_port           integer,
  ssh_user           text,
  cores              integer     NOT NULL,
  memory_gb          numeric     NOT NULL,
  disk_gb            integer     NOT NULL,
  deposit_remaining  bigint      NOT NULL CHECK (deposit_remaining >= 0),
  burn_per_day       bigint      NOT NULL CHECK (burn_per_day > 0),
  -- Cloud-init user data (sealed): Hetzner re-runs it on rebuild, and so does the local provider.
  user_data_sealed   text,
  webhook_url        text,
  webhook_secret_sealed text,
  -- Set when the deposit could not pay a day: the server is destroyed then unless funds arrive first.
  auto_destroy_at    timestamptz,
  last_burn_day      date,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  destroyed_at       timestamptz
);
-- Names are unique per wallet among servers that exist.
CREATE UNIQUE INDEX servers_owner_name ON servers (owner, name) WHERE status <> 'destroyed';
CREATE UNIQUE INDEX servers_provider_id ON servers (provider, provider_id) WHERE status <> 'destroyed';
CREATE INDEX servers_owner_created ON servers (owner, created_at DESC, id DESC);
CREATE INDEX servers_live ON servers (status) WHERE status <> 'destroyed';

-- The keys a server was created with (re-applied on rebuild).
CREATE TABLE server_keys (
  server_id  text NOT NULL REFERENCES servers (id),
  key_id     text NOT NULL,
  public_key text NOT NULL,
  md5        text NOT NULL,
  name       text NOT NULL,
  PRIMARY KEY (server_id, key_id)
);

CREATE TABLE actions (
  id             text        PRIMARY KEY,
  owner          text        NOT NULL,
  server_id      text        NOT NULL REFERENCES servers (id),
  command        text        NOT NULL,
  status         text        NOT NULL CHECK (status IN ('running', 'success', 'error')),
  progress       integer     NOT NULL DEFAULT 0,
  error_code     text,
  error_message  text,
  -- Which process runs it, and when it last said so: a running action whose runner went quiet is failed
  -- by reconciliation instead of staying "running" forever.
  -- A secret the action produced (Hetzner's generated root password), sealed; handed out once, then erased.
  secret_sealed  text,
  runner         text        NOT NULL,
  heartbeat_at   timestamptz NOT NULL DEFAULT now(),
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
-- One action at a time per server.
CREATE UNIQUE INDEX actions_one_running ON actions (server_id) WHERE status = 'running';
CREATE INDEX actions_running ON actions (heartbeat_at) WHERE status = 'running';

CREATE TABLE webhook_deliveries (
  id               text        PRIMARY KEY,
  owner            text        NOT NULL,
  server_id        text,
  event            text        NOT NULL,
  -- One delivery per event occurrence (e.g. low_balance per server per day).
  dedupe_key       text        NOT NULL UNIQUE,
  url              text        NOT NULL,
  secret_sealed    text        NOT NULL,
  payload          jsonb       NOT NULL,
  status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
