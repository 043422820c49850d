-- The LLM proxy (seed P1-06): holds on a tenant's credits while a call is in flight, per-tenant rate-limit
-- windows shared by every replica, and how each usage row's token counts were obtained.

-- A hold is one ledger row of kind 'reservation' (a debit of the most the call can cost) made before the call
-- is forwarded, undone by one 'reservation_release' row (reference = this id for both) when the call settles.
-- Because the hold moves the balance itself, concurrent calls of one tenant see each other's holds through
-- the credits row lock, and the tenant cannot overdraw by more than one call's underestimate.
CREATE TABLE llm_reservations (
  id text PRIMARY KEY CHECK (id ~ '^rsv_[0-9A-Za-z]{22}$'),
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  model text NOT NULL,
  -- 0 for a free model (no ledger rows are written then).
  amount_micros bigint NOT NULL CHECK (amount_micros >= 0),
  max_output_tokens integer NOT NULL CHECK (max_output_tokens > 0),
  input_tokens_estimate integer NOT NULL CHECK (input_tokens_estimate >= 0),
  -- open: in flight; settled: the call was billed; released: the call failed, nothing billed;
  -- expired: its process stopped renewing it (a crash) and a sweeper released it.
  state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled', 'released', 'expired')),
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Renewed by the process serving the call while it runs; a sweeper releases holds past it.
  expires_at timestamptz NOT NULL,
  closed_at timestamptz,
  CHECK ((state = 'open') = (closed_at IS NULL))
);
CREATE INDEX llm_reservations_open_idx ON llm_reservations (expires_at) WHERE state = 'open';
CREATE INDEX llm_reservations_tenant_idx ON llm_reservations (tenant_id, created_at DESC);

-- Requests per tenant per minute (sliding window approximated from the current and previous minute).
CREATE TABLE llm_rate_windows (
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  window_start timestamptz NOT NULL,
  requests integer NOT NULL CHECK (requests >= 0),
  PRIMARY KEY (tenant_id, window_start)
);
CREATE INDEX llm_rate_windows_start_idx ON llm_rate_windows (window_start);

ALTER TABLE usage_logs
  -- 'provider': the counts are the provider's own usage figures. 'estimated': the provider gave none (the
  -- call was cut short, or an OpenAI-compatible server that reports no usage); see src/llm-proxy/estimate.ts.
  ADD COLUMN usage_source text NOT NULL DEFAULT 'provider' CHECK (usage_source IN ('provider', 'estimated')),
  -- 'completed'; 'client_disconnected' (the caller left, the proxy read the rest from the provider);
  -- 'aborted' (the proxy stopped the provider after the caller left, or at shutdown).
  ADD COLUMN outcome text NOT NULL DEFAULT 'completed'
    CHECK (outcome IN ('completed', 'client_disconnected', 'aborted')),
  ADD COLUMN reservation_id text;
