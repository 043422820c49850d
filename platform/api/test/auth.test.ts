import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlatformStore } from '../src/store.js';
import { Browser, json, type SignedUp, signUp, startTestPlatform, type TestPlatform, totp } from './support/helpers.js';

let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(async () => {
  await t?.stop();
});

const signIn = (browser: Browser, email: string, password: string) =>
  browser.fetch('/api/auth/sign-in/email', { method: 'POST', json: { email, password } });

async function makeAdmin(): Promise<SignedUp> {
  const admin = await signUp(t);
  await new PlatformStore(t.platform.db).setUserRole(admin.userId, 'admin');
  return admin;
}

const tenantOf = async (userId: string) => (await new PlatformStore(t.platform.db).findTenantOfUser(userId))!;

describe('sign-in', () => {
  it('signs in with the password, and refuses a wrong one', async () => {
    const { email, password } = await signUp(t);
    const browser = t.browser();
    expect((await signIn(browser, email, 'wrong-password')).status).toBe(401);
    expect((await browser.fetch('/api/account')).status).toBe(401);
    const ok = await signIn(browser, email.toUpperCase(), password);
    expect(ok.status).toBe(200);
    const cookie = ok.headers.getSetCookie().find((c) => c.startsWith('agentsquads.session_token='))!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).not.toMatch(/Secure/); // plain http in tests; production and https URLs get __Secure- + Secure
    expect((await json(await browser.fetch('/api/account'))).user.email).toBe(email);

    await browser.fetch('/api/auth/sign-out', { method: 'POST', json: {} });
    expect((await browser.fetch('/api/account')).status).toBe(401);
  });
});

describe('every /api/* route needs a caller, except health, auth and public reads', () => {
  it('answers 401 with the error envelope to anonymous callers', async () => {
    const anonymous = t.browser();
    for (const [method, path] of [
      ['GET', '/api/account'],
      ['DELETE', '/api/account'],
      ['GET', '/api/tenant'],
      ['GET', '/api/credits'],
      ['GET', '/api/credits/ledger'],
      ['GET', '/api/conversations'],
      ['POST', '/api/conversations'],
      ['GET', '/api/admin/tenants'],
      ['POST', '/api/admin/tenants/ten_0000000000000000000000/suspend'],
      ['POST', '/api/service-tokens'],
      ['GET', '/api/no-such-route'],
      ['POST', '/api/public/models'],
    ] as const) {
      const res = await anonymous.fetch(path, { method });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect((await json(res)).error).toMatchObject({ code: 'unauthorized', status: 401 });
    }
    expect((await anonymous.fetch('/api/health')).status).toBe(200);
    expect((await anonymous.fetch('/api/public/models')).status).toBe(200);
    expect((await anonymous.fetch('/api/public/auth-providers')).status).toBe(200);
    expect((await anonymous.fetch('/api/public/openapi.json')).status).toBe(200);
    expect((await anonymous.fetch('/api/auth/get-session')).status).toBe(200);
  });

  it('does not take a forged or foreign session cookie', async () => {
    const forged = t.browser();
    forged.cookies().set('agentsquads.session_token', 'forged.value');
    expect((await forged.fetch('/api/account')).status).toBe(401);
  });

  it('refuses cookie-authenticated changes from another origin (CSRF)', async () => {
    const { browser, email } = await signUp(t);
    const res = await browser.fetch('/api/account', {
      method: 'DELETE',
      headers: { origin: 'https://evil.example' },
      json: { confirm: email },
    });
    expect(res.status).toBe(403);
    expect((await json(res)).error.code).toBe('cross_origin_refused');
    expect((await browser.fetch('/api/account')).status).toBe(200);
    const viaBetterAuth = await browser.fetch('/api/auth/sign-out', {
      method: 'POST',
      headers: { origin: 'https://evil.example' },
      json: {},
    });
    expect(viaBetterAuth.status).toBe(403);
  });
});

describe('what callers cannot do through Better Auth', () => {
  it('cannot make themselves admin, unban themselves or fake their sign-up provider', async () => {
    const signUpAsAdmin = await t.browser().fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: 'sneaky@example.com', password: 'a-good-password', name: 'S', role: 'admin' },
    });
    expect(signUpAsAdmin.status).toBe(400);
    const { browser, userId } = await signUp(t);
    for (const data of [
      { role: 'admin' },
      { banned: false },
      { signupProvider: 'google' },
      { twoFactorEnabled: true },
    ]) {
      const res = await browser.fetch('/api/auth/update-user', { method: 'POST', json: data });
      expect(res.status, JSON.stringify(data)).toBe(400);
    }
    const user = (await new PlatformStore(t.platform.db).findUser(userId))!;
    expect(user).toMatchObject({ role: 'user', provider: 'credential', two_factor_enabled: false });
    // Renaming is fine.
    expect((await browser.fetch('/api/auth/update-user', { method: 'POST', json: { name: 'New Name' } })).status).toBe(
      200,
    );
  });

  it('cannot reach the endpoints switched off (self-delete bypassing cleanup, bare user creation)', async () => {
    const admin = await makeAdmin();
    const create = await admin.browser.fetch('/api/auth/admin/create-user', {
      method: 'POST',
      json: { email: 'bare@example.com', password: 'a-good-password', name: 'Bare' },
    });
    expect(create.status).toBe(404);
    const remove = await admin.browser.fetch('/api/auth/admin/remove-user', {
      method: 'POST',
      json: { userId: admin.userId },
    });
    expect(remove.status).toBe(404);
    const selfDelete = await admin.browser.fetch('/api/auth/delete-user', { method: 'POST', json: {} });
    expect(selfDelete.status).toBe(404);
    expect((await admin.browser.fetch('/api/account')).status).toBe(200);
  });

  it('a non-admin cannot use the admin plugin', async () => {
    const { browser } = await signUp(t);
    const other = await signUp(t);
    const ban = await browser.fetch('/api/auth/admin/ban-user', { method: 'POST', json: { userId: other.userId } });
    expect(ban.status).toBe(403);
    const impersonate = await browser.fetch('/api/auth/admin/impersonate-user', {
      method: 'POST',
      json: { userId: other.userId },
    });
    expect(impersonate.status).toBe(403);
  });
});

describe('two-factor (TOTP)', () => {
  it('enrols with the code from an authenticator, then a sign-in needs the code', async () => {
    const { browser, email, password } = await signUp(t);
    const enable = await browser.fetch('/api/auth/two-factor/enable', { method: 'POST', json: { password } });
    expect(enable.status).toBe(200);
    const { totpURI, backupCodes } = await json(enable);
    expect(backupCodes.length).toBeGreaterThan(0);
    const secret = new URL(totpURI).searchParams.get('secret')!;
    expect(new URL(totpURI).searchParams.get('issuer')).toBe('AgentSquads');
    // Not enabled until a code proves the authenticator has the secret.
    expect((await json(await browser.fetch('/api/account'))).user.twoFactorEnabled).toBe(false);
    const verify = await browser.fetch('/api/auth/two-factor/verify-totp', {
      method: 'POST',
      json: { code: totp(secret) },
    });
    expect(verify.status).toBe(200);
    expect((await json(await browser.fetch('/api/account'))).user.twoFactorEnabled).toBe(true);

    // A new device: the password alone does not give a session.
    const phone = t.browser();
    const first = await signIn(phone, email, password);
    expect(first.status).toBe(200);
    expect(await json(first)).toMatchObject({ twoFactorRedirect: true });
    expect((await phone.fetch('/api/account')).status).toBe(401);
    const wrong = await phone.fetch('/api/auth/two-factor/verify-totp', {
      method: 'POST',
      json: { code: totp(secret, Date.now() - 10 * 60_000) },
    });
    expect(wrong.status).toBe(401);
    expect((await phone.fetch('/api/account')).status).toBe(401);
    const right = await phone.fetch('/api/auth/two-factor/verify-totp', {
      method: 'POST',
      json: { code: totp(secret) },
    });
    expect(right.status).toBe(200);
    expect((await json(await phone.fetch('/api/account'))).user.email).toBe(email);
    // The TOTP secret is stored encrypted, never as the base32 the user scanned.
    const stored = await t.platform.db.selectFrom('two_factors').select('secret').executeTakeFirstOrThrow();
    expect(stored.secret).not.toContain(secret);
  });
});

describe('banned and suspended users are refused', () => {
  it('a banned user loses their sessions and cannot sign in', async () => {
    const admin = await makeAdmin();
    const victim = await signUp(t);
    const ban = await admin.browser.fetch('/api/auth/admin/ban-user', {
      method: 'POST',
      json: { userId: victim.userId, banReason: 'spam' },
    });
    expect(ban.status).toBe(200);
    expect((await victim.browser.fetch('/api/account')).status).toBe(401);
    const again = await signIn(t.browser(), victim.email, victim.password);
    expect(again.status).toBe(403);
    // A ban that lands while a session is alive (e.g. set in the database) is enforced on the next request.
    const other = await signUp(t);
    await t.platform.db.updateTable('users').set({ banned: true }).where('id', '=', other.userId).execute();
    const res = await other.browser.fetch('/api/account');
    expect(res.status).toBe(403);
    expect((await json(res)).error.code).toBe('account_banned');
  });

  it('a suspended tenant is signed out, refused at sign-in and on every route; unsuspending restores it', async () => {
    const admin = await makeAdmin();
    const user = await signUp(t);
    const tenant = await tenantOf(user.userId);
    const plain = await signUp(t);
    // Only admins may suspend.
    expect(
      (await plain.browser.fetch(`/api/admin/tenants/${tenant.id}/suspend`, { method: 'POST', json: {} })).status,
    ).toBe(403);

    const suspend = await admin.browser.fetch(`/api/admin/tenants/${tenant.id}/suspend`, {
      method: 'POST',
      json: { reason: 'payment dispute' },
    });
    expect(suspend.status).toBe(200);
    expect(await json(suspend)).toMatchObject({ id: tenant.id, status: 'suspended', statusReason: 'payment dispute' });
    expect(t.requester.of('stop').map((c) => c.tenantId)).toContain(tenant.id);

    expect((await user.browser.fetch('/api/account')).status).toBe(401); // sessions revoked
    const refused = await signIn(t.browser(), user.email, user.password);
    expect(refused.status).toBe(403);
    expect(JSON.stringify(await json(refused))).toContain('ACCOUNT_SUSPENDED');
    const token = await t.platform.serviceTokens.mint({ tenantId: tenant.id, subject: 'runtime' });
    const viaService = await t.browser().fetch('/api/tenant', { headers: { authorization: `Bearer ${token.token}` } });
    expect(viaService.status).toBe(403);
    expect((await json(viaService)).error).toMatchObject({
      code: 'account_suspended',
      details: { reason: 'payment dispute' },
    });

    const unsuspend = await admin.browser.fetch(`/api/admin/tenants/${tenant.id}/unsuspend`, {
      method: 'POST',
      json: {},
    });
    expect(await json(unsuspend)).toMatchObject({ status: 'active', statusReason: null });
    expect(t.requester.of('start').map((c) => c.tenantId)).toContain(tenant.id);
    const back = t.browser();
    expect((await signIn(back, user.email, user.password)).status).toBe(200);
    expect((await back.fetch('/api/account')).status).toBe(200);
  });

  it('suspending an unknown or malformed tenant id is a 404 or 400', async () => {
    const admin = await makeAdmin();
    const unknown = await admin.browser.fetch('/api/admin/tenants/ten_0000000000000000000000/suspend', {
      method: 'POST',
      json: {},
    });
    expect(unknown.status).toBe(404);
    const malformed = await admin.browser.fetch('/api/admin/tenants/../suspend', { method: 'POST', json: {} });
    expect([400, 404]).toContain(malformed.status);
    const bad = await admin.browser.fetch('/api/admin/tenants/not-an-id/suspend', { method: 'POST', json: {} });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.field).toBe('path.id');
  });
});

describe('auth rate limiting', () => {
  it('answers 429 with Retry-After after too many credential attempts from one address, counted in the database', async () => {
    const limited = await startTestPlatform({
      AUTH_RATE_LIMIT_CREDENTIALS_MAX: '3',
      AUTH_RATE_LIMIT_MAX: '4',
      AUTH_RATE_LIMIT_WINDOW_SECONDS: '60',
    });
    try {
      const { email } = await signUp(limited); // one attempt from its own address
      const attacker = limited.browser('10.99.0.1');
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await signIn(attacker, email, `guess-${i}-password`)).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      const blocked = await signIn(attacker, email, 'guess-x-password');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      // Someone else is not affected.
      expect((await signIn(limited.browser('10.99.0.2'), email, 'wrong-password')).status).toBe(401);
      // Other auth routes have the general budget; reading the session has none.
      const reader = limited.browser('10.99.0.3');
      const ok: number[] = [];
      const session: number[] = [];
      for (let i = 0; i < 6; i++) {
        ok.push((await reader.fetch('/api/auth/ok')).status);
        session.push((await reader.fetch('/api/auth/get-session')).status);
      }
      expect(ok).toEqual([200, 200, 200, 200, 429, 429]);
      expect(session.every((s) => s === 200)).toBe(true);
      const rows = await limited.platform.db.selectFrom('rate_limits').selectAll().execute();
      expect(rows.some((r) => r.key.includes('10.99.0.1'))).toBe(true);
    } finally {
      await limited.stop();
    }
  });

  it('believes X-Forwarded-For only from trusted proxies', async () => {
    const limited = await startTestPlatform({
      AUTH_RATE_LIMIT_CREDENTIALS_MAX: '2',
      PLATFORM_TRUSTED_PROXIES: '192.0.2.1',
    });
    try {
      const statuses: number[] = [];
      // Each request claims another address; the platform sees the loopback peer every time.
      for (let i = 0; i < 4; i++) {
        statuses.push(
          (await signIn(new Browser(limited.url, `10.98.0.${i + 1}`), 'x@example.com', 'whatever-pw')).status,
        );
      }
      expect(statuses.slice(2)).toEqual([429, 429]);
    } finally {
      await limited.stop();
    }
  });
});
