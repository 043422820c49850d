import type { Logger } from '@agentstack/core';
import { betterAuth } from 'better-auth';
import { APIError } from 'better-auth/api';
import { admin, genericOAuth, twoFactor } from 'better-auth/plugins';
import { adminSchema, authModels, generateAuthId, twoFactorSchema } from './auth-schema.js';
import type { PlatformConfig } from './config.js';
import type { TransactionScopedKysely } from './db.js';
import type { TenantProvisioner } from './provisioning.js';
import { PlatformStore } from './store.js';

/** The header carrying the client address we computed (`clientAddress`); any copy a caller sends is replaced. */
export const CLIENT_IP_HEADER = 'x-agentsquads-client-ip';
export const OIDC_PROVIDER_ID = 'oidc';
export const COOKIE_PREFIX = 'agentsquads';

/** Paths of credential checks: they get the stricter rate limit. */
const CREDENTIAL_PATHS = [
  '/sign-in/*',
  '/sign-up/*',
  '/two-factor/*',
  '/change-password',
  '/change-email',
  '/request-password-reset',
  '/reset-password/*',
];

/**
 * Paths switched off: accounts are deleted through `DELETE /api/account` (runtime, files, closure
 * record), and users come into being only by signing up (which provisions their tenant in the same
 * transaction), never by an admin creating a bare user row.
 */
const DISABLED_PATHS = ['/delete-user', '/delete-user/callback', '/admin/remove-user', '/admin/create-user'];

export interface AuthDeps {
  config: PlatformConfig;
  db: TransactionScopedKysely;
  secret: string;
  provisioner: TenantProvisioner;
  log: Logger;
}

/** Cookies are `Secure` (and `__Secure-`-prefixed) in production and whenever the public URL is https. */
export const usesSecureCookies = (config: PlatformConfig) =>
  config.production || new URL(config.PLATFORM_PUBLIC_URL).protocol === 'https:';

export function createAuth({ config, db, secret, provisioner, log }: AuthDeps) {
  const authLog = log.child({ component: 'better-auth' });
  const socialProviders = Object.fromEntries(
    config.socialProviders.map(({ id, clientId, clientSecret }) => [id, { clientId, clientSecret }]),
  );
  const secure = usesSecureCookies(config);
  return betterAuth({
    appName: 'AgentSquads',
    baseURL: config.PLATFORM_PUBLIC_URL,
    basePath: '/api/auth',
    secret,
    database: { db, type: 'postgres', transaction: true },
    ...authModels,
    emailAndPassword: { enabled: true, autoSignIn: true, minPasswordLength: 8, maxPasswordLength: 128 },
    socialProviders,
    trustedOrigins: config.trustedOrigins,
    rateLimit: {
      ...authModels.rateLimit,
      enabled: true,
      storage: config.AUTH_RATE_LIMIT_STORAGE,
      window: config.AUTH_RATE_LIMIT_WINDOW_SECONDS,
      max: config.AUTH_RATE_LIMIT_MAX,
      customRules: {
        ...Object.fromEntries(
          CREDENTIAL_PATHS.map((path) => [
            path,
            { window: config.AUTH_RATE_LIMIT_WINDOW_SECONDS, max: config.AUTH_RATE_LIMIT_CREDENTIALS_MAX },
          ]),
        ),
        // Reading the session guesses nothing (tokens are signed, 32 random characters) and the web app's
        // server asks it on every page render, often from one address: never limited.
        '/get-session': false,
      },
    },
    disabledPaths: DISABLED_PATHS,
    advanced: {
      database: { generateId: generateAuthId },
      cookiePrefix: COOKIE_PREFIX,
      useSecureCookies: secure,
      defaultCookieAttributes: { sameSite: 'lax', httpOnly: true, secure, path: '/' },
      ipAddress: { ipAddressHeaders: [CLIENT_IP_HEADER] },
    },
    // OAuth access/refresh tokens are encrypted with the auth secret before they reach the database.
    account: { ...authModels.account, accountLinking: { enabled: true }, encryptOAuthTokens: true },
    plugins: [
      twoFactor({ issuer: 'AgentSquads', schema: twoFactorSchema }),
      admin({ schema: adminSchema, defaultRole: 'user', adminRoles: ['admin'] }),
      ...(config.oidc
        ? [
            genericOAuth({
              config: [
                {
                  providerId: OIDC_PROVIDER_ID,
                  name: config.oidc.name,
                  discoveryUrl: `${config.oidc.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
                  clientId: config.oidc.clientId,
                  clientSecret: config.oidc.clientSecret,
                  scopes: ['openid', 'email', 'profile'],
                  pkce: true,
                },
              ],
            }),
          ]
        : []),
    ],
    databaseHooks: {
      account: {
        create: {
          // Sign-up's second half, inside Better Auth's transaction (see provisioning.ts).
          before: async (account) => {
            await provisioner.onAccountCreate({
              userId: account.userId,
              providerId: account.providerId,
              accountId: account.accountId,
            });
          },
        },
      },
      session: {
        create: {
          // A suspended tenant's user gets no new session (banned users are refused by the admin plugin).
          before: async (session) => {
            const store = new PlatformStore(db.currentTransaction() ?? db);
            const tenant = await store.findTenantOfUser(session.userId);
            if (tenant?.status === 'suspended') {
              throw new APIError('FORBIDDEN', { code: 'ACCOUNT_SUSPENDED', message: 'This account is suspended.' });
            }
          },
        },
      },
    },
    logger: {
      level: 'warn',
      log: (level, message, ...args) => {
        const err = args.find((a) => a instanceof Error);
        const rest = args
          .filter((a) => !(a instanceof Error))
          .map((a) => (typeof a === 'string' ? a : JSON.stringify(a)));
        const detail = { ...(err ? { err } : {}), ...(rest.length > 0 ? { detail: rest } : {}) };
        if (level === 'error') authLog.error(detail, message);
        else if (level === 'warn') authLog.warn(detail, message);
        else authLog.debug(detail, message);
      },
    },
    telemetry: { enabled: false },
  });
}

export type Auth = ReturnType<typeof createAuth>;
export type AuthSession = NonNullable<Awaited<ReturnType<Auth['api']['getSession']>>>;
