import { freePort } from '@agentstack/core';
import { sql } from '@agentstack/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlatformStore } from '../src/store.js';
import { type Browser, json, startTestPlatform, type TestPlatform } from './support/helpers.js';
import { type OidcServer, startOidcServer } from './support/oidc.js';

let t: TestPlatform;
let oidc: OidcServer;

beforeAll(async () => {
  const port = await freePort();
  oidc = await startOidcServer({ redirectUri: `http://127.0.0.1:${port}/api/auth/callback/oidc` });
  t = await startTestPlatform(
    {
      OIDC_ISSUER: oidc.issuer,
      OIDC_CLIENT_ID: oidc.clientId,
      OIDC_CLIENT_SECRET: oidc.clientSecret,
      OIDC_PROVIDER_NAME: 'Test SSO',
    },
    { port },
  );
});
afterAll(async () => {
  await t?.stop();
  await oidc?.stop();
});

/**
 * The whole browser round trip: ask the platform to start an OAuth sign-in, follow the redirects through
 * the provider's authorize endpoint and login, back to our callback, until the platform sends the browser
 * to the page it asked for (or to the error page). Returns where the browser ends up.
 */
async function oauthSignIn(browser: Browser, subject: string): Promise<URL> {
  oidc.loginAs(subject);
  const start = await browser.fetch('/api/auth/sign-in/social', {
    method: 'POST',
    json: { provider: 'oidc', callbackURL: '/dashboard', errorCallbackURL: '/signin' },
  });
  expect(start.status).toBe(200);
  const { url } = await json(start);
  expect(new URL(url).origin).toBe(oidc.issuer);
  expect(new URL(url).searchParams.get('code_challenge_method')).toBe('S256');
  let current = new URL(url);
  let response = await browser.fetch(current.toString());
  for (let hops = 0; hops < 15; hops++) {
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || !location) {
      throw new Error(`stuck at ${current} with ${response.status}: ${await response.text()}`);
    }
    current = new URL(location, current);
    const landed = current.origin === t.url && !current.pathname.startsWith('/api/auth/');
    if (landed) return current;
    response = await browser.fetch(current.toString());
  }
  throw new Error('too many redirects');
}

const countsFor = async (email: string) => {
  const { rows } = await sql<{ users: string; accounts: string; sessions: string; tenants: string; keys: string }>`
    select (select count(*) from users where email = ${email}) as users,
           (select count(*) from accounts a join users u on u.id = a.user_id where u.email = ${email}) as accounts,
           (select count(*) from sessions s join users u on u.id = s.user_id where u.email = ${email}) as sessions,
           (select count(*) from tenants t join users u on u.id = t.user_id where u.email = ${email}) as tenants,
           (select count(*) from tenant_api_keys k join tenants t on t.id = k.tenant_id join users u on u.id = t.user_id
             where u.email = ${email}) as keys`.execute(t.platform.db);
  return Object.fromEntries(Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]));
};

describe('OAuth / OpenID Connect sign-in against a real provider on loopback', () => {
  it('is offered by the platform', async () => {
    const providers = await json(await t.browser().fetch('/api/public/auth-providers'));
    expect(providers.oidc).toEqual({ id: 'oidc', name: 'Test SSO' });
  });

  it('first login creates user, account, tenant, credits and key like a password sign-up; a second login reuses them', async () => {
    oidc.accounts.set('sub-ada', { email: 'ada@example.org', name: 'Ada Lovelace' });
    const creates = t.requester.of('create').length;

    const laptop = t.browser();
    const landed = await oauthSignIn(laptop, 'sub-ada');
    expect(landed.pathname).toBe('/dashboard');
    const account = await json(await laptop.fetch('/api/account'));
    expect(account.user).toMatchObject({ email: 'ada@example.org', name: 'Ada Lovelace', signupProvider: 'oidc' });
    expect(account.tenant).toMatchObject({ status: 'active', credits: { balance: '10.00' } });
    expect(await countsFor('ada@example.org')).toEqual({ users: 1, accounts: 1, sessions: 1, tenants: 1, keys: 1 });

    const store = new PlatformStore(t.platform.db);
    const user = (await store.findUserByEmail('ada@example.org'))!;
    expect(user).toMatchObject({ provider: 'oidc', provider_id: 'sub-ada', email_verified: true });
    const linked = await t.platform.db
      .selectFrom('accounts')
      .selectAll()
      .where('user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(linked).toMatchObject({ provider_id: 'oidc', account_id: 'sub-ada', password: null });
    // The provider's tokens are stored encrypted (DESIGN: OAuth tokens encrypted at rest).
    const tokens = await sql<{ access_token: string | null; refresh_token: string | null }>`
      select access_token, refresh_token from accounts where id = ${linked.id}`.execute(t.platform.db);
    expect(tokens.rows[0]!.access_token).toMatch(/^[0-9a-f]{80,}$/);
    const ledger = await store.listLedger(account.tenant.id, { limit: 10 });
    expect(ledger).toMatchObject([{ kind: 'free_credit', amount_micros: 10_000_000n }]);
    expect(t.requester.of('create').slice(creates)).toEqual([
      expect.objectContaining({
        kind: 'create',
        tenantId: account.tenant.id,
        apiKey: expect.stringMatching(/^sk-asq-/),
      }),
    ]);

    // Another device, same person at the provider: same user and tenant, a new session, no new runtime.
    const phone = t.browser();
    expect((await oauthSignIn(phone, 'sub-ada')).pathname).toBe('/dashboard');
    const again = await json(await phone.fetch('/api/account'));
    expect(again.user.id).toBe(user.id);
    expect(again.tenant.id).toBe(account.tenant.id);
    expect(await countsFor('ada@example.org')).toEqual({ users: 1, accounts: 1, sessions: 2, tenants: 1, keys: 1 });
    expect(t.requester.of('create').length).toBe(creates + 1);
  });

  it('a fault in the middle of an OAuth first login leaves nothing behind, and the next login works', async () => {
    oidc.accounts.set('sub-grace', { email: 'grace@example.org', name: 'Grace Hopper' });
    await sql`create or replace function inject_fault() returns trigger language plpgsql as $$
      begin raise exception 'injected fault'; end $$;
      create trigger inject_fault before insert on credits for each row execute function inject_fault();`.execute(
      t.platform.db,
    );
    let landed: URL;
    try {
      landed = await oauthSignIn(t.browser(), 'sub-grace');
    } finally {
      await sql`drop trigger inject_fault on credits`.execute(t.platform.db);
    }
    expect(landed.pathname).toBe('/signin');
    expect(landed.searchParams.get('error')).toBeTruthy();
    expect(await countsFor('grace@example.org')).toEqual({ users: 0, accounts: 0, sessions: 0, tenants: 0, keys: 0 });

    const browser = t.browser();
    expect((await oauthSignIn(browser, 'sub-grace')).pathname).toBe('/dashboard');
    expect(await countsFor('grace@example.org')).toEqual({ users: 1, accounts: 1, sessions: 1, tenants: 1, keys: 1 });
  });
});
