-- Accounts: Better Auth 1.7.7's tables, written by hand for the names in src/auth-schema.ts.
-- Better Auth's user/session/account tables ARE the seed's users/sessions/accounts (P1-02).
-- The password hash lives in accounts.password of the `credential` account (scrypt, Better Auth's
-- format), not in users: one place for it. Plugins: twoFactor (two_factors, users.two_factor_enabled)
-- and admin (users.role/banned/ban_reason/ban_expires, sessions.impersonated_by).
-- test/auth-schema.test.ts asks Better Auth's own migration planner to confirm it has nothing to add.

CREATE TABLE users (
  id text PRIMARY KEY,
  name text NOT NULL,
  -- Better Auth lowercases emails before every read and write.
  email text NOT NULL UNIQUE CHECK (email = lower(email)),
  email_verified boolean NOT NULL DEFAULT false,
  image text,
  created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  -- Seed fields Better Auth lacks: how the user first signed up (`credential` or an OAuth provider id)
  -- and that provider's account id. Set in the sign-up transaction.
  provider text,
  provider_id text,
  -- twoFactor plugin
  two_factor_enabled boolean NOT NULL DEFAULT false,
  -- admin plugin (comma-separated roles; `admin` may use /api/admin/*)
  role text NOT NULL DEFAULT 'user',
  banned boolean NOT NULL DEFAULT false,
  ban_reason text,
  ban_expires timestamptz
);

CREATE TABLE sessions (
  id text PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  token text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  ip_address text,
  user_agent text,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- admin plugin: the admin behind an impersonation session
  impersonated_by text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE accounts (
  id text PRIMARY KEY,
  account_id text NOT NULL,
  provider_id text NOT NULL,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  access_token text,
  refresh_token text,
  id_token text,
  access_token_expires_at timestamptz,
  refresh_token_expires_at timestamptz,
  scope text,
  password text,
  created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  -- One user per identity at a provider (Better Auth looks accounts up by this pair).
  CONSTRAINT accounts_provider_account_key UNIQUE (provider_id, account_id)
);
CREATE INDEX accounts_user_id_idx ON accounts (user_id);

CREATE TABLE verifications (
  id text PRIMARY KEY,
  identifier text NOT NULL,
  value text NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX verifications_identifier_idx ON verifications (identifier);

-- twoFactor plugin: the TOTP secret and backup codes (both encrypted by Better Auth with the auth secret).
CREATE TABLE two_factors (
  id text PRIMARY KEY,
  secret text NOT NULL,
  backup_codes text NOT NULL,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  verified boolean NOT NULL DEFAULT true,
  failed_verification_count integer NOT NULL DEFAULT 0,
  locked_until timestamptz
);
CREATE INDEX two_factors_secret_idx ON two_factors (secret);
CREATE INDEX two_factors_user_id_idx ON two_factors (user_id);

-- Auth rate limiting (storage "database", so every replica shares the counters).
CREATE TABLE rate_limits (
  id text PRIMARY KEY,
  key text NOT NULL UNIQUE,
  count integer NOT NULL,
  -- milliseconds since the epoch
  last_request bigint NOT NULL
);
CREATE INDEX rate_limits_last_request_idx ON rate_limits (last_request);
