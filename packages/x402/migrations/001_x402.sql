-- Shared by every x402-paid service: idempotent replays, in-flight payment claims, used request signatures.

CREATE TABLE x402_idempotency (
  payer         text        NOT NULL,
  route         text        NOT NULL,
  key           text        NOT NULL,
  request_hash  text        NOT NULL,
  state         text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
  status        integer,
  headers       jsonb,
  body          text,
  locked_until  timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz,
  PRIMARY KEY (payer, route, key)
);

-- One row per payment authorization while it is being used, so the same signed payment
-- cannot pay for two requests at once (across replicas too).
CREATE TABLE x402_payment_claims (
  id          text        PRIMARY KEY,
  expires_at  timestamptz NOT NULL
);

-- Signatures of signed (free) requests already accepted: a replay inside the validity window is refused.
CREATE TABLE x402_signed_requests (
  signature_hash  text        PRIMARY KEY,
  expires_at      timestamptz NOT NULL
);
CREATE INDEX x402_signed_requests_expiry ON x402_signed_requests (expires_at);
