import { resolve } from 'node:path';
import { ConfigError, env, loadConfig, parseDollarsToMicros } from '@agentstack/core';
import { z } from 'zod';
import { type ProxySettings, proxyConfigShape, proxySettings } from './llm-proxy/config.js';

/** A dollar amount in env (`"10.00"`), read as micro-dollars. */
const dollars = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      try {
        return parseDollarsToMicros(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });

const secret = () => z.string().min(32, 'must be at least 32 characters');

export const platformConfigSchema = z.object({
  NODE_ENV: z.string().default('development'),
  PLATFORM_API_PORT: env.port(3001),
  PLATFORM_API_HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: env.url(),
  /** The origin the browser sees (the web app, which proxies /api/* here). OAuth callbacks and CSRF checks use it. */
  PLATFORM_PUBLIC_URL: env.url().default('http://localhost:3000'),
  /** More origins allowed to send credentialed requests (comma-separated). */
  PLATFORM_TRUSTED_ORIGINS: env.list().default([]),
  /** Peers whose X-Forwarded-For is believed (the web app's proxy). Everyone else is keyed by socket address. */
  PLATFORM_TRUSTED_PROXIES: env.list().default(['127.0.0.1', '::1']),
  BETTER_AUTH_SECRET: secret().optional(),
  /** Key of the service tokens other platform components present; derived from BETTER_AUTH_SECRET when unset. */
  PLATFORM_SERVICE_TOKEN_SECRET: secret().optional(),
  SERVICE_TOKEN_TTL_SECONDS: env.int(300, 10).pipe(z.number().max(3600)),
  /** Where this service keeps files (generated secrets, tenant workspaces). `start` passes its own. */
  SERVICE_DATA_DIR: z.string().default('.data/platform-api'),
  /** Tenant workspaces live in `<TENANT_DATA_DIR>/<tenant id>/workspace`. */
  TENANT_DATA_DIR: z.string().optional(),
  SIGNUP_FREE_CREDIT: dollars('10.00'),
  AUTH_RATE_LIMIT_STORAGE: z.enum(['database', 'memory']).default('database'),
  AUTH_RATE_LIMIT_WINDOW_SECONDS: env.int(60, 1),
  /** Requests per window per client IP and auth path. */
  AUTH_RATE_LIMIT_MAX: env.int(100, 1),
  /** Stricter budget for sign-in, sign-up, two-factor and password routes. */
  AUTH_RATE_LIMIT_CREDENTIALS_MAX: env.int(10, 1),
  GOOGLE_CLIENT_ID: z.string().optional(),
  GOOGLE_CLIENT_SECRET: z.string().optional(),
  GITHUB_CLIENT_ID: z.string().optional(),
  GITHUB_CLIENT_SECRET: z.string().optional(),
  FACEBOOK_CLIENT_ID: z.string().optional(),
  FACEBOOK_CLIENT_SECRET: z.string().optional(),
  TWITTER_CLIENT_ID: z.string().optional(),
  TWITTER_CLIENT_SECRET: z.string().optional(),
  LINKEDIN_CLIENT_ID: z.string().optional(),
  LINKEDIN_CLIENT_SECRET: z.string().optional(),
  /** Any OpenID Connect provider (Keycloak, Authentik, Okta, …) found by discovery at `<issuer>/.well-known/openid-configuration`. */
  OIDC_ISSUER: env.url().optional(),
  OIDC_CLIENT_ID: z.string().optional(),
  OIDC_CLIENT_SECRET: z.string().optional(),
  OIDC_PROVIDER_NAME: z.string().default('Single sign-on'),
  /** Where tenant runtimes run: bubblewrap sandboxes (default, needs root), Docker containers, or nowhere. */
  TENANT_RUNTIME_BACKEND: z.enum(['sandbox', 'docker', 'none']).default('sandbox'),
  /** Default limits of a tenant runtime. */
  TENANT_MEMORY_MB: env.int(512, 64),
  TENANT_CPUS: z.coerce.number().min(0.05).max(64).default(0.5),
  TENANT_PIDS: env.int(256, 32),
  /** How long chat waits for a runtime to become healthy. */
  TENANT_START_TIMEOUT_SECONDS: env.int(30, 1),
  /** The model runtimes use when a Hand names none (default: `demo` under `start --demo`, else the runtime's). */
  TENANT_DEFAULT_MODEL: z.string().min(1).optional(),
  /** Docker backend: the tenant image (built locally by deploy/tenant/build.sh when missing). */
  TENANT_IMAGE: z.string().min(1).default('agentsquads/tenant:dev'),
  DEV_ADMIN_EMAIL: z.email().default('admin@agentsquads.local'),
  LOG_LEVEL: env.logLevel(),
  ...proxyConfigShape,
});

export type RawPlatformConfig = z.infer<typeof platformConfigSchema>;

export interface PlatformConfig extends RawPlatformConfig {
  production: boolean;
  dataDir: string;
  tenantDataDir: string;
  /** Browser origins allowed to make credentialed calls: the public URL first. */
  trustedOrigins: string[];
  /** OAuth providers with both halves of their credentials configured. */
  socialProviders: SocialProviderCredentials[];
  oidc: { issuer: string; clientId: string; clientSecret: string; name: string } | undefined;
  /** The LLM proxy's tunables (limits and timeouts) in milliseconds. */
  proxy: ProxySettings;
}

export const SOCIAL_PROVIDERS = ['google', 'github', 'facebook', 'twitter', 'linkedin'] as const;
export type SocialProviderId = (typeof SOCIAL_PROVIDERS)[number];
export interface SocialProviderCredentials {
  id: SocialProviderId;
  clientId: string;
  clientSecret: string;
}

/**
 * Reads the environment once. Production (`NODE_ENV=production`) refuses to start without a real
 * `BETTER_AUTH_SECRET` and public URL; a provider with only half its credentials is an error, not silence.
 */
export function loadPlatformConfig(source: Record<string, string | undefined> = process.env): PlatformConfig {
  const raw = loadConfig(platformConfigSchema, source);
  const problems: { variable: string; message: string }[] = [];
  const production = raw.NODE_ENV === 'production';
  if (production && !raw.BETTER_AUTH_SECRET) {
    problems.push({ variable: 'BETTER_AUTH_SECRET', message: 'required in production (it is not set)' });
  }
  if (production && !source.PLATFORM_PUBLIC_URL) {
    problems.push({ variable: 'PLATFORM_PUBLIC_URL', message: 'required in production (it is not set)' });
  }
  const socialProviders: SocialProviderCredentials[] = [];
  for (const id of SOCIAL_PROVIDERS) {
    const prefix = id.toUpperCase();
    const clientId = raw[`${prefix}_CLIENT_ID` as keyof RawPlatformConfig] as string | undefined;
    const clientSecret = raw[`${prefix}_CLIENT_SECRET` as keyof RawPlatformConfig] as string | undefined;
    if (clientId && clientSecret) socialProviders.push({ id, clientId, clientSecret });
    else if (clientId || clientSecret) {
      const missing = clientId ? `${prefix}_CLIENT_SECRET` : `${prefix}_CLIENT_ID`;
      problems.push({ variable: missing, message: `required when ${prefix} sign-in is configured (it is not set)` });
    }
  }
  const oidcParts = [raw.OIDC_ISSUER, raw.OIDC_CLIENT_ID, raw.OIDC_CLIENT_SECRET];
  if (oidcParts.some(Boolean) && !oidcParts.every(Boolean)) {
    for (const name of ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET'] as const) {
      if (!raw[name])
        problems.push({ variable: name, message: 'required when OIDC sign-in is configured (it is not set)' });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = resolve(raw.SERVICE_DATA_DIR);
  const publicOrigin = new URL(raw.PLATFORM_PUBLIC_URL).origin;
  return {
    ...raw,
    production,
    dataDir,
    tenantDataDir: resolve(raw.TENANT_DATA_DIR ?? resolve(dataDir, 'tenants')),
    trustedOrigins: [publicOrigin, ...raw.PLATFORM_TRUSTED_ORIGINS.map((o) => new URL(o).origin)],
    socialProviders,
    proxy: proxySettings(raw),
    oidc:
      raw.OIDC_ISSUER && raw.OIDC_CLIENT_ID && raw.OIDC_CLIENT_SECRET
        ? {
            issuer: raw.OIDC_ISSUER,
            clientId: raw.OIDC_CLIENT_ID,
            clientSecret: raw.OIDC_CLIENT_SECRET,
            name: raw.OIDC_PROVIDER_NAME,
          }
        : undefined,
  };
}
