-- The models price list and what each LLM call cost (seed P1-02, P1-06). Micro-dollars throughout.

CREATE TABLE models (
  id text PRIMARY KEY,
  -- What clients ask the LLM proxy for (`model` in an OpenAI-style request).
  name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._:/-]{0,99}$'),
  display_name text NOT NULL,
  provider text NOT NULL CHECK (provider IN ('openai', 'anthropic', 'google', 'openai-compatible')),
  -- The id the provider knows the model by (e.g. a dated snapshot).
  upstream_model text NOT NULL,
  -- Provider list price per million tokens, in µ$ ($2.50 = 2,500,000). Seed: provider_cost_*_per_m.
  provider_cost_input_per_m_micros bigint NOT NULL CHECK (provider_cost_input_per_m_micros >= 0),
  provider_cost_output_per_m_micros bigint NOT NULL CHECK (provider_cost_output_per_m_micros >= 0),
  -- Our margin on top of the provider cost, in percent.
  markup_pct integer NOT NULL DEFAULT 30 CHECK (markup_pct BETWEEN 0 AND 1000),
  enabled boolean NOT NULL DEFAULT true,
  -- Served by the offline fixture model server (`start --demo`), labelled as such everywhere.
  demo boolean NOT NULL DEFAULT false,
  context_window integer CHECK (context_window > 0),
  -- The most output tokens one request may produce (the proxy caps max_tokens and reserves for it).
  max_output_tokens integer NOT NULL CHECK (max_output_tokens > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE usage_logs (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  -- The model's name when the call was made (kept if the models row changes or goes).
  model text NOT NULL,
  model_id text REFERENCES models (id) ON DELETE SET NULL,
  provider text NOT NULL,
  input_tokens integer NOT NULL CHECK (input_tokens >= 0),
  output_tokens integer NOT NULL CHECK (output_tokens >= 0),
  -- What the provider charges us, and our margin on it. The tenant is charged cost + margin: one
  -- credit_ledger row of kind 'usage' with reference = this id, in the same transaction.
  cost_micros bigint NOT NULL CHECK (cost_micros >= 0),
  margin_micros bigint NOT NULL CHECK (margin_micros >= 0),
  conversation_id text,
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT usage_logs_conversation_fkey FOREIGN KEY (conversation_id, tenant_id)
    REFERENCES conversations (id, tenant_id) ON DELETE SET NULL (conversation_id)
);
CREATE INDEX usage_logs_tenant_idx ON usage_logs (tenant_id, created_at DESC);
