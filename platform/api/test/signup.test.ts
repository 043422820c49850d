import { sql } from '@agentstack/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticateApiKey, hashApiKey } from '../src/api-keys.js';
import { PlatformStore } from '../src/store.js';
import { json, signUp, startTestPlatform, type TestPlatform } from './support/helpers.js';

let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(async () => {
  await t?.stop();
});

/** Row counts of every table sign-up writes to, for one user (or all rows when no user is given). */
async function rowsOf(email: string) {
  const { rows } = await sql<{ table: string; n: string }>`
    with u as (select id from users where email = ${email}),
         te as (select id from tenants where user_id in (select id from u))
    select 'users' as table, count(*)::text as n from u
    union all select 'accounts', count(*)::text from accounts where user_id in (select id from u)
    union all select 'sessions', count(*)::text from sessions where user_id in (select id from u)
    union all select 'tenants', count(*)::text from te
    union all select 'credits', count(*)::text from credits where tenant_id in (select id from te)
    union all select 'credit_ledger', count(*)::text from credit_ledger where tenant_id in (select id from te)
    union all select 'tenant_api_keys', count(*)::text from tenant_api_keys where tenant_id in (select id from te)
  `.execute(t.platform.db);
  return Object.fromEntries(rows.map((r) => [r.table, Number(r.n)]));
}

const everyTableEmpty = async () => {
  const { rows } = await sql<{ n: string }>`
    select (select count(*) from users) + (select count(*) from accounts) + (select count(*) from sessions)
         + (select count(*) from tenants) + (select count(*) from credits) + (select count(*) from credit_ledger)
         + (select count(*) from tenant_api_keys) as n`.execute(t.platform.db);
  return Number(rows[0]!.n);
};

describe('sign-up by email', () => {
  it('creates user, credential account, session, an active tenant, $10.00 as a ledger row and a hashed API key', async () => {
    const before = t.requester.of('create').length;
    const { browser, email, userId } = await signUp(t);
    expect(userId).toMatch(/^usr_[0-9A-Za-z]{22}$/);
    expect(await rowsOf(email)).toEqual({
      users: 1,
      accounts: 1,
      sessions: 1,
      tenants: 1,
      credits: 1,
      credit_ledger: 1,
      tenant_api_keys: 1,
    });

    const store = new PlatformStore(t.platform.db);
    const user = (await store.findUser(userId))!;
    expect(user.provider).toBe('credential');
    expect(user.provider_id).toBe(userId);
    const tenant = (await store.findTenantOfUser(userId))!;
    expect(tenant.status).toBe('active');
    expect(tenant.runtime_id).toBeNull();
    const credits = (await store.findCredits(tenant.id))!;
    expect(credits.balance_micros).toBe(10_000_000n);
    expect(credits.free_credit_used).toBe(true);
    const [entry] = await store.listLedger(tenant.id, { limit: 10 });
    expect(entry).toMatchObject({ kind: 'free_credit', amount_micros: 10_000_000n, balance_after_micros: 10_000_000n });

    // The runtime was requested once, after the commit, with the key in plaintext; only its hash is stored.
    const created = t.requester.of('create').slice(before);
    expect(created).toHaveLength(1);
    expect(created[0]!.tenantId).toBe(tenant.id);
    const apiKey = created[0]!.apiKey!;
    expect(apiKey).toMatch(/^sk-asq-[0-9A-Za-z]{43}$/);
    const keyRow = await t.platform.db
      .selectFrom('tenant_api_keys')
      .selectAll()
      .where('tenant_id', '=', tenant.id)
      .executeTakeFirstOrThrow();
    expect(keyRow.key_hash).toBe(hashApiKey(apiKey));
    expect(JSON.stringify(keyRow)).not.toContain(apiKey.slice(10));
    expect(await authenticateApiKey(store, apiKey)).toMatchObject({ tenantId: tenant.id, status: 'active', userId });
    const altered = `${apiKey.slice(0, -1)}${apiKey.endsWith('x') ? 'y' : 'x'}`;
    expect(await authenticateApiKey(store, altered)).toBeUndefined();
    expect(t.logText()).not.toContain(apiKey);

    // The session works, and the account shows the free credit.
    const account = await json(await browser.fetch('/api/account'));
    expect(account.user).toMatchObject({ id: userId, email, signupProvider: 'credential', role: 'user' });
    expect(account.tenant).toMatchObject({
      id: tenant.id,
      status: 'active',
      credits: { balance: '10.00', balanceMicros: '10000000', freeCreditUsed: true },
    });
  });

  it('refuses a second sign-up with the same email and creates nothing more', async () => {
    const { email } = await signUp(t);
    const again = await t.browser().fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: email.toUpperCase(), password: 'another-password-1', name: 'X' },
    });
    expect(again.status).toBe(422);
    expect((await rowsOf(email)).tenants).toBe(1);
  });

  it('refuses bad input with 400 and writes nothing', async () => {
    const browser = t.browser();
    const short = await browser.fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: 'short@example.com', password: 'short', name: 'X' },
    });
    expect(short.status).toBe(400);
    const badEmail = await browser.fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: 'not-an-email', password: 'long-enough-password', name: 'X' },
    });
    expect(badEmail.status).toBe(400);
    expect((await rowsOf('short@example.com')).users).toBe(0);
  });
});

describe('fault injection: sign-up is one transaction', () => {
  /**
   * A real failure inside the database, in the middle of the sequence: a trigger that raises when the
   * given table is written. The code under test runs unchanged.
   */
  async function withFault<T>(table: string, fn: () => Promise<T>): Promise<T> {
    await sql
      .raw(`
      create or replace function inject_fault() returns trigger language plpgsql as $$
      begin raise exception 'injected fault on %', tg_table_name; end $$;
      create trigger inject_fault before insert on ${table} for each row execute function inject_fault();`)
      .execute(t.platform.db);
    try {
      return await fn();
    } finally {
      await sql.raw(`drop trigger inject_fault on ${table}`).execute(t.platform.db);
    }
  }

  // credits: after user, account and tenant; credit_ledger: the free credit; tenant_api_keys: the last
  // provisioning step; sessions: Better Auth's own step after ours.
  for (const table of ['tenants', 'credits', 'credit_ledger', 'tenant_api_keys', 'sessions']) {
    it(`a failure writing ${table} leaves no user, account, session, tenant, credit or key behind`, async () => {
      const email = `fault-${table.replace(/_/g, '-')}@example.com`;
      const creates = t.requester.of('create').length;
      const tenantsBefore = await everyTableEmpty();
      const res = await withFault(table, () =>
        t.browser().fetch('/api/auth/sign-up/email', {
          method: 'POST',
          json: { email, password: 'a-good-password', name: 'Fault' },
        }),
      );
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(
        res.headers.getSetCookie().filter((c) => c.includes('session_token=') && !c.includes('Max-Age=0')),
      ).toEqual([]);
      expect(await rowsOf(email)).toEqual({
        users: 0,
        accounts: 0,
        sessions: 0,
        tenants: 0,
        credits: 0,
        credit_ledger: 0,
        tenant_api_keys: 0,
      });
      expect(await everyTableEmpty()).toBe(tenantsBefore);
      expect(t.requester.of('create')).toHaveLength(creates); // no runtime for a sign-up that did not happen

      // Nothing was left half-done: the same email signs up cleanly once the fault is gone.
      const retry = await t.browser().fetch('/api/auth/sign-up/email', {
        method: 'POST',
        json: { email, password: 'a-good-password', name: 'Fault' },
      });
      expect(retry.status).toBe(200);
      expect((await rowsOf(email)).tenants).toBe(1);
    });
  }

  it('a failing runtime request does not undo the sign-up (it is logged)', async () => {
    t.requester.failNext.create = new Error('orchestrator down');
    const { email } = await signUp(t);
    expect((await rowsOf(email)).tenants).toBe(1);
    expect(t.logs.some((l) => l.msg === 'after-commit task failed')).toBe(true);
  });
});
