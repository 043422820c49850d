import { newId } from '@agentstack/core';

/**
 * How Better Auth's models map onto our tables (`migrations/001_auth.sql`, written by hand).
 * Better Auth's user/session/account tables *are* the seed's `users`/`sessions`/`accounts`; columns are
 * snake_case like the rest of the schema. `test/auth-schema.test.ts` proves Better Auth 1.7.7 itself finds
 * nothing to add or change against exactly this SQL.
 */
export const authModels = {
  user: {
    modelName: 'users',
    fields: { emailVerified: 'email_verified', createdAt: 'created_at', updatedAt: 'updated_at' },
    additionalFields: {
      /** How the user first signed up: `credential` (email + password) or an OAuth provider id. Seed: users.provider. */
      signupProvider: { type: 'string', required: false, input: false, fieldName: 'provider' },
      /** That provider's account id for the user. Seed: users.provider_id. */
      signupProviderAccountId: { type: 'string', required: false, input: false, fieldName: 'provider_id' },
    },
  },
  session: {
    modelName: 'sessions',
    fields: {
      expiresAt: 'expires_at',
      createdAt: 'created_at',
      updatedAt: 'updated_at',
      ipAddress: 'ip_address',
      userAgent: 'user_agent',
      userId: 'user_id',
    },
  },
  account: {
    modelName: 'accounts',
    fields: {
      accountId: 'account_id',
      providerId: 'provider_id',
      userId: 'user_id',
      accessToken: 'access_token',
      refreshToken: 'refresh_token',
      idToken: 'id_token',
      accessTokenExpiresAt: 'access_token_expires_at',
      refreshTokenExpiresAt: 'refresh_token_expires_at',
      createdAt: 'created_at',
      updatedAt: 'updated_at',
    },
  },
  verification: {
    modelName: 'verifications',
    fields: { expiresAt: 'expires_at', createdAt: 'created_at', updatedAt: 'updated_at' },
  },
  rateLimit: {
    modelName: 'rate_limits',
    fields: { lastRequest: 'last_request' },
  },
} as const;

/** Column names of the `twoFactor` plugin (TOTP). */
export const twoFactorSchema = {
  user: { fields: { twoFactorEnabled: 'two_factor_enabled' } },
  twoFactor: {
    modelName: 'two_factors',
    fields: {
      backupCodes: 'backup_codes',
      userId: 'user_id',
      failedVerificationCount: 'failed_verification_count',
      lockedUntil: 'locked_until',
    },
  },
};

/** Column names of the `admin` plugin (roles, bans, impersonation). */
export const adminSchema = {
  user: { fields: { banReason: 'ban_reason', banExpires: 'ban_expires' } },
  session: { fields: { impersonatedBy: 'impersonated_by' } },
};

const ID_PREFIX: Record<string, string> = {
  user: 'usr',
  session: 'ses',
  account: 'acc',
  verification: 'ver',
  twoFactor: 'tfa',
  rateLimit: 'rl',
};

/** Better Auth's ids follow the project's convention: prefixed, random, URL-safe (`usr_…`). */
export const generateAuthId = ({ model }: { model: string }): string => newId(ID_PREFIX[model] ?? 'auth');
