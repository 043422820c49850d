import { ConfigError } from '@agentstack/core';
import { describe, expect, it } from 'vitest';
import { loadPlatformConfig } from '../src/config.js';
import { json, startTestPlatform } from './support/helpers.js';

const base = { DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/platform' };

const problemsOf = (env: Record<string, string>) => {
  try {
    loadPlatformConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => p.variable);
    throw err;
  }
  return [];
};

describe('configuration', () => {
  it('needs a database, and in production a real secret and public URL', () => {
    expect(problemsOf({})).toEqual(['DATABASE_URL']);
    expect(problemsOf({ ...base, NODE_ENV: 'production' })).toEqual(['BETTER_AUTH_SECRET', 'PLATFORM_PUBLIC_URL']);
    expect(problemsOf({ ...base, BETTER_AUTH_SECRET: 'too-short' })).toEqual(['BETTER_AUTH_SECRET']);
    expect(
      problemsOf({
        ...base,
        NODE_ENV: 'production',
        BETTER_AUTH_SECRET: 'x'.repeat(40),
        PLATFORM_PUBLIC_URL: 'https://agentsquads.example',
      }),
    ).toEqual([]);
  });

  it('enables an OAuth provider only with both halves of its credentials, and names the missing half', () => {
    expect(loadPlatformConfig(base).socialProviders).toEqual([]);
    const config = loadPlatformConfig({
      ...base,
      GOOGLE_CLIENT_ID: 'g-id',
      GOOGLE_CLIENT_SECRET: 'g-secret',
      TWITTER_CLIENT_ID: 'x-id',
      TWITTER_CLIENT_SECRET: 'x-secret',
    });
    expect(config.socialProviders.map((p) => p.id)).toEqual(['google', 'twitter']);
    expect(problemsOf({ ...base, GITHUB_CLIENT_ID: 'only-the-id' })).toEqual(['GITHUB_CLIENT_SECRET']);
    expect(problemsOf({ ...base, OIDC_ISSUER: 'https://sso.example' })).toEqual([
      'OIDC_CLIENT_ID',
      'OIDC_CLIENT_SECRET',
    ]);
  });

  it('reads the free credit in dollars, as micro-dollars', () => {
    expect(loadPlatformConfig(base).SIGNUP_FREE_CREDIT).toBe(10_000_000n);
    expect(loadPlatformConfig({ ...base, SIGNUP_FREE_CREDIT: '0.50' }).SIGNUP_FREE_CREDIT).toBe(500_000n);
    expect(problemsOf({ ...base, SIGNUP_FREE_CREDIT: '1.2345678' })).toEqual(['SIGNUP_FREE_CREDIT']);
  });
});

describe('configured OAuth providers', () => {
  it('send the browser to each provider with our client id and callback', async () => {
    const env: Record<string, string> = {};
    for (const id of ['GOOGLE', 'GITHUB', 'FACEBOOK', 'TWITTER', 'LINKEDIN']) {
      env[`${id}_CLIENT_ID`] = `${id.toLowerCase()}-client-id`;
      env[`${id}_CLIENT_SECRET`] = `${id.toLowerCase()}-client-secret`;
    }
    const t = await startTestPlatform(env);
    try {
      const providers = await json(await t.browser().fetch('/api/public/auth-providers'));
      expect(providers.social).toEqual(['google', 'github', 'facebook', 'twitter', 'linkedin']);
      const expectedHost: Record<string, string> = {
        google: 'accounts.google.com',
        github: 'github.com',
        facebook: 'www.facebook.com',
        twitter: 'x.com',
        linkedin: 'www.linkedin.com',
      };
      for (const provider of providers.social as string[]) {
        const res = await t.browser().fetch('/api/auth/sign-in/social', {
          method: 'POST',
          json: { provider, callbackURL: '/dashboard' },
        });
        expect(res.status, provider).toBe(200);
        const url = new URL((await json(res)).url);
        expect(url.hostname, provider).toBe(expectedHost[provider]);
        expect(url.searchParams.get('client_id')).toBe(`${provider}-client-id`);
        expect(url.searchParams.get('redirect_uri')).toBe(`${t.url}/api/auth/callback/${provider}`);
        expect(url.searchParams.get('state')).toBeTruthy();
      }
      // A provider that is not configured is not available.
      const missing = await t.browser().fetch('/api/auth/sign-in/social', {
        method: 'POST',
        json: { provider: 'discord', callbackURL: '/dashboard' },
      });
      expect(missing.status).toBeGreaterThanOrEqual(400);
    } finally {
      await t.stop();
    }
  });
});

describe('cookies on an https origin', () => {
  it('are __Secure-, Secure, HttpOnly and SameSite=Lax', async () => {
    const publicUrl = 'https://app.agentsquads.test';
    const t = await startTestPlatform({ PLATFORM_PUBLIC_URL: publicUrl });
    try {
      const browser = t.browser();
      const res = await browser.fetch('/api/auth/sign-up/email', {
        method: 'POST',
        headers: { origin: publicUrl },
        json: { email: 'secure@example.com', password: 'a-good-password', name: 'S' },
      });
      expect(res.status).toBe(200);
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith('__Secure-agentsquads.session_token='))!;
      expect(cookie).toMatch(/;\s*Secure/i);
      expect(cookie).toMatch(/HttpOnly/i);
      expect(cookie).toMatch(/SameSite=Lax/i);
      expect((await browser.fetch('/api/account')).status).toBe(200);
      // The platform's own origin (http) is not trusted here: the public one is.
      const cross = await browser.fetch('/api/account', { method: 'DELETE', json: { confirm: 'secure@example.com' } });
      expect(cross.status).toBe(403);
    } finally {
      await t.stop();
    }
  });
});
