-- Tenants, their LLM-proxy keys, and credits with a ledger (seed P1-02; money in micro-dollars,
-- 1 cent = 10,000 µ$: the seed's *_cents columns are *_micros here).

CREATE TABLE tenants (
  id text PRIMARY KEY CHECK (id ~ '^ten_[0-9A-Za-z]{22}$'),
  -- RESTRICT: a user is only ever removed together with its tenant (src/tenants.ts), never behind its back.
  user_id text NOT NULL UNIQUE REFERENCES users (id) ON DELETE RESTRICT,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'suspended')),
  status_reason text,
  -- The orchestrator's id for the tenant's runtime (seed: container_id); null until one exists.
  runtime_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_status_idx ON tenants (status, created_at, id);
CREATE INDEX tenants_created_idx ON tenants (created_at, id);

-- Keys the tenant's runtime presents to the LLM proxy. Only a SHA-256 of the key is kept (keys are 256-bit
-- random, so a fast hash is enough and allows an indexed lookup); the plaintext exists once, in memory.
CREATE TABLE tenant_api_keys (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  -- The first characters, to tell keys apart in logs and support without revealing them.
  key_prefix text NOT NULL,
  label text NOT NULL DEFAULT 'runtime',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
-- One live key per tenant and purpose: rotating revokes the old one in the same transaction.
CREATE UNIQUE INDEX tenant_api_keys_live_idx ON tenant_api_keys (tenant_id, label) WHERE revoked_at IS NULL;

-- The balance is a cache of the ledger; see the triggers below for why it cannot drift from it.
CREATE TABLE credits (
  tenant_id text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  -- May go below zero by at most one request's cost (the LLM proxy reserves before forwarding).
  balance_micros bigint NOT NULL DEFAULT 0,
  free_credit_used boolean NOT NULL DEFAULT false,
  -- The ledger row that produced the current balance.
  last_entry_id bigint,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credit_ledger (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  -- Signed: credits positive, debits negative.
  amount_micros bigint NOT NULL,
  -- Computed by the trigger from the locked balance; whatever the caller sends is ignored.
  balance_after_micros bigint NOT NULL DEFAULT 0,
  kind text NOT NULL,
  -- What this entry is for (a usage_logs id, a payment id, an idempotency key); unique per tenant and kind,
  -- so posting the same thing twice is a no-op.
  reference text,
  memo text,
  -- `system`, or the id of the admin user who made it.
  created_by text NOT NULL DEFAULT 'system',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_ledger_kind_check CHECK (kind IN (
    'free_credit', 'purchase', 'admin_grant', 'refund', 'reservation_release',
    'usage', 'reservation', 'adjustment')),
  CONSTRAINT credit_ledger_sign_check CHECK (
    (kind IN ('free_credit', 'purchase', 'admin_grant', 'refund', 'reservation_release') AND amount_micros > 0)
    OR (kind IN ('usage', 'reservation') AND amount_micros < 0)
    OR (kind = 'adjustment' AND amount_micros <> 0)),
  CONSTRAINT credit_ledger_reference_key UNIQUE (tenant_id, kind, reference)
);
CREATE INDEX credit_ledger_tenant_idx ON credit_ledger (tenant_id, id DESC);

-- How the balance is tied to the ledger (no balance change without a ledger row):
-- 1. credit_ledger_apply (BEFORE INSERT on credit_ledger) is the only writer of credits.balance_micros:
--    it locks the tenant's credits row, skips the row when (tenant, kind, reference) was already posted,
--    moves the balance by the amount, records the row as credits.last_entry_id and stores the resulting
--    balance in the row. Concurrent postings of one tenant queue on that row lock.
-- 2. credits_guard (BEFORE INSERT/UPDATE on credits) refuses a new credits row with a balance, and any
--    direct UPDATE of balance_micros/last_entry_id, at once and with a clear message.
-- 3. credits_match_ledger, a DEFERRABLE INITIALLY DEFERRED constraint trigger, re-checks at COMMIT that every
--    changed credits row's balance equals balance_after_micros of the ledger row it names. Whatever path
--    changed the balance (another trigger, an INSERT … ON CONFLICT that discarded its ledger row), a balance
--    without its ledger row cannot commit.
-- 4. credit_ledger_immutable: ledger rows are never updated, and only deleted together with their tenant
--    (account deletion, which first writes the tenant's totals to tenant_closures).

CREATE FUNCTION credit_ledger_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM credits WHERE tenant_id = NEW.tenant_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'tenant % has no credits row', NEW.tenant_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  IF NEW.reference IS NOT NULL AND EXISTS (
    SELECT 1 FROM credit_ledger
    WHERE tenant_id = NEW.tenant_id AND kind = NEW.kind AND reference = NEW.reference
  ) THEN
    RETURN NULL; -- already posted: nothing changes (callers read the existing row)
  END IF;
  UPDATE credits
  SET balance_micros = balance_micros + NEW.amount_micros,
      last_entry_id = NEW.id,
      free_credit_used = free_credit_used OR NEW.kind = 'free_credit',
      updated_at = now()
  WHERE tenant_id = NEW.tenant_id
  RETURNING balance_micros INTO NEW.balance_after_micros;
  RETURN NEW;
END;
$$;
CREATE TRIGGER credit_ledger_apply BEFORE INSERT ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION credit_ledger_apply();

CREATE FUNCTION credits_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.balance_micros <> 0 OR NEW.last_entry_id IS NOT NULL THEN
      RAISE EXCEPTION 'credits start at zero; add to them with a credit_ledger row'
        USING ERRCODE = 'check_violation';
    END IF;
  ELSIF (NEW.balance_micros IS DISTINCT FROM OLD.balance_micros
         OR NEW.last_entry_id IS DISTINCT FROM OLD.last_entry_id)
        AND pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'credits.balance_micros changes only through a credit_ledger row'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER credits_guard BEFORE INSERT OR UPDATE ON credits
  FOR EACH ROW EXECUTE FUNCTION credits_guard();

CREATE FUNCTION credits_match_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  current credits%ROWTYPE;
  recorded bigint;
BEGIN
  SELECT * INTO current FROM credits WHERE tenant_id = NEW.tenant_id;
  IF NOT FOUND THEN
    RETURN NULL; -- deleted later in the same transaction
  END IF;
  IF current.last_entry_id IS NULL THEN
    recorded := 0;
  ELSE
    SELECT balance_after_micros INTO recorded FROM credit_ledger
    WHERE id = current.last_entry_id AND tenant_id = current.tenant_id;
  END IF;
  IF recorded IS NULL OR recorded <> current.balance_micros THEN
    RAISE EXCEPTION 'credits of tenant % (% µ$) do not match the ledger (entry %, % µ$)',
      current.tenant_id, current.balance_micros, current.last_entry_id, recorded
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER credits_match_ledger AFTER INSERT OR UPDATE ON credits
  DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION credits_match_ledger();

CREATE FUNCTION credit_ledger_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = OLD.tenant_id) THEN
    RETURN OLD; -- the tenant itself is being deleted (ON DELETE CASCADE)
  END IF;
  RAISE EXCEPTION 'credit_ledger rows are permanent; post a correcting entry instead'
    USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER credit_ledger_immutable BEFORE UPDATE OR DELETE ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION credit_ledger_immutable();

-- What accounting keeps of a deleted tenant: totals only, no personal data and no link to a person
-- (the user row, its email and every row of the tenant are gone).
CREATE TABLE tenant_closures (
  tenant_id text PRIMARY KEY,
  reason text NOT NULL CHECK (reason IN ('user_deleted', 'admin_deleted')),
  tenant_created_at timestamptz NOT NULL,
  closed_at timestamptz NOT NULL DEFAULT now(),
  -- Sums over the ledger: everything credited (free credit, purchases, grants, refunds) and debited.
  credited_micros bigint NOT NULL,
  purchased_micros bigint NOT NULL,
  debited_micros bigint NOT NULL,
  final_balance_micros bigint NOT NULL,
  -- Sums over usage_logs: what the LLM calls cost us and what we earned on them.
  usage_calls bigint NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  cost_micros bigint NOT NULL,
  margin_micros bigint NOT NULL
);
