-- Webhook targets, an outbox of deliveries, and every attempt made (the delivery log).

CREATE TABLE webhook_targets (
  id                    text        PRIMARY KEY,
  -- Whose target this is, in the using service's terms (a wallet address, a mailbox id…).
  owner                 text        NOT NULL,
  url                   text        NOT NULL,
  -- Sealed with the service's secret box when it gave one (AAD: the target id).
  secret                text        NOT NULL,
  -- NULL: every event type.
  events                text[],
  status                text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'deleted')),
  consecutive_failures  integer     NOT NULL DEFAULT 0,
  disabled_reason       text,
  disabled_at           timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_targets_owner ON webhook_targets (owner) WHERE status <> 'deleted';

CREATE TABLE webhook_deliveries (
  id               text        PRIMARY KEY,
  target_id        text        NOT NULL REFERENCES webhook_targets (id),
  event_id         text        NOT NULL,
  event_type       text        NOT NULL,
  -- The exact bytes that are signed and sent on every attempt.
  payload          text        NOT NULL,
  status           text        NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  -- A worker holds the row while sending; a crashed worker's lease runs out and another takes over.
  locked_until     timestamptz,
  last_status      integer,
  last_error       text,
  created_at       timestamptz NOT NULL,
  finished_at      timestamptz,
  UNIQUE (target_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (target_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
  delivery_id  text        NOT NULL REFERENCES webhook_deliveries (id),
  attempt      integer     NOT NULL,
  started_at   timestamptz NOT NULL,
  duration_ms  integer     NOT NULL,
  status_code  integer,
  error        text,
  PRIMARY KEY (delivery_id, attempt)
);
