import { randomBytes } from 'node:crypto';
import { ManualClock } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateApiKey } from '../src/api-keys.js';
import { ServiceTokens } from '../src/service-token.js';
import { PlatformStore } from '../src/store.js';
import { json, type SignedUp, signUp, startTestPlatform, type TestPlatform } from './support/helpers.js';

let t: TestPlatform;
let alice: SignedUp & { tenantId: string; apiKey: string };
let bob: SignedUp & { tenantId: string; apiKey: string };

async function tenantUser(): Promise<SignedUp & { tenantId: string; apiKey: string }> {
  const user = await signUp(t);
  const tenant = (await new PlatformStore(t.platform.db).findTenantOfUser(user.userId))!;
  const created = t.requester.of('create').find((c) => c.tenantId === tenant.id)!;
  return { ...user, tenantId: tenant.id, apiKey: created.apiKey! };
}

beforeAll(async () => {
  t = await startTestPlatform();
  alice = await tenantUser();
  bob = await tenantUser();
});
afterAll(async () => {
  await t?.stop();
});

const withToken = (token: string, init: RequestInit & { json?: unknown } = {}) => ({
  ...init,
  headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
});

async function exchange(apiKey: string, subject = 'runtime') {
  const res = await t.browser().fetch('/api/service-tokens', withToken(apiKey, { method: 'POST', json: { subject } }));
  return { res, body: res.status === 201 ? await json(res) : undefined };
}

describe('service tokens', () => {
  it('a runtime trades its tenant API key for a short-lived token that acts for that tenant only', async () => {
    const { res, body } = await exchange(alice.apiKey);
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(body).toMatchObject({ tokenType: 'Bearer', tenantId: alice.tenantId });
    expect(new Date(body.expiresAt).getTime() - Date.now()).toBeLessThanOrEqual(300_000);
    const tenant = await json(await t.browser().fetch('/api/tenant', withToken(body.token)));
    expect(tenant).toMatchObject({ id: alice.tenantId, status: 'active', credits: { balance: '10.00' } });
  });

  it('refuses a revoked, malformed or unknown key, and the key itself on other routes', async () => {
    expect((await exchange(`sk-asq-${'A'.repeat(43)}`)).res.status).toBe(401);
    expect((await exchange('sk-asq-short')).res.status).toBe(401);
    // The key is only good for the exchange, not as a platform credential.
    expect((await t.browser().fetch('/api/tenant', withToken(alice.apiKey))).status).toBe(403);
    // Sessions cannot mint tokens.
    expect((await alice.browser.fetch('/api/service-tokens', { method: 'POST', json: {} })).status).toBe(403);
  });

  it('refuses forged, expired and over-long tokens', async () => {
    const forged = await new ServiceTokens(randomBytes(32), 300).mint({ tenantId: alice.tenantId, subject: 'runtime' });
    expect((await t.browser().fetch('/api/tenant', withToken(forged.token))).status).toBe(401);

    const clock = new ManualClock(new Date(Date.now() - 10 * 60_000));
    const key = (t.platform.serviceTokens as unknown as { key: Uint8Array }).key;
    const old = await new ServiceTokens(key, 300, clock).mint({ tenantId: alice.tenantId, subject: 'runtime' });
    const expired = await t.browser().fetch('/api/tenant', withToken(old.token));
    expect(expired.status).toBe(401);
    expect((await json(expired)).error.message).toMatch(/expired/);

    const [header, payload] = old.token.split('.');
    const tampered = `${header}.${Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), tid: bob.tenantId }),
    ).toString('base64url')}.${old.token.split('.')[2]}`;
    expect((await t.browser().fetch('/api/tenant', withToken(tampered))).status).toBe(401);
    expect((await t.browser().fetch('/api/tenant', withToken('not.a.token'))).status).toBe(401);
  });

  it('a rotated key stops working at once', async () => {
    const carol = await tenantUser();
    const fresh = await rotateApiKey(t.platform.db, carol.tenantId);
    expect((await exchange(carol.apiKey)).res.status).toBe(401);
    expect((await exchange(fresh)).res.status).toBe(201);
  });
});

describe('conversations: each tenant sees only its own', () => {
  it('users create and read conversations; runtimes record messages with a service token', async () => {
    const created = await alice.browser.fetch('/api/conversations', { method: 'POST', json: { title: 'Research' } });
    expect(created.status).toBe(201);
    const conversation = await json(created);
    expect(conversation.id).toMatch(/^cnv_/);

    const { body } = await exchange(alice.apiKey);
    const post = (message: object) =>
      t
        .browser()
        .fetch(
          `/api/conversations/${conversation.id}/messages`,
          withToken(body.token, { method: 'POST', json: message }),
        );
    expect((await post({ role: 'user', content: 'find papers on X', channel: 'telegram' })).status).toBe(201);
    expect((await post({ role: 'assistant', content: 'Here are three.', metadata: { model: 'gpt-4o' } })).status).toBe(
      201,
    );
    expect((await post({ role: 'robot', content: 'x' })).status).toBe(400);

    // People do not write messages directly (they chat; the relay persists both sides).
    const direct = await alice.browser.fetch(`/api/conversations/${conversation.id}/messages`, {
      method: 'POST',
      json: { role: 'assistant', content: 'forged' },
    });
    expect(direct.status).toBe(403);

    const page = await json(await alice.browser.fetch(`/api/conversations/${conversation.id}/messages?limit=1`));
    expect(page.items).toMatchObject([{ role: 'user', content: 'find papers on X', channel: 'telegram' }]);
    const next = await json(
      await alice.browser.fetch(`/api/conversations/${conversation.id}/messages?limit=1&cursor=${page.nextCursor}`),
    );
    expect(next.items).toMatchObject([{ role: 'assistant', channel: 'web', metadata: { model: 'gpt-4o' } }]);
    expect(next.nextCursor).toBeNull();

    const list = await json(await alice.browser.fetch('/api/conversations'));
    expect(list.items.map((c: { id: string }) => c.id)).toContain(conversation.id);
  });

  it("bob's session and bob's runtime cannot see, change or write alice's conversation", async () => {
    const conversation = await json(await alice.browser.fetch('/api/conversations', { method: 'POST', json: {} }));
    const { body } = await exchange(bob.apiKey);
    const asBobRuntime = (path: string, init: RequestInit & { json?: unknown } = {}) =>
      t.browser().fetch(path, withToken(body.token, init));
    for (const res of [
      await bob.browser.fetch(`/api/conversations/${conversation.id}`),
      await bob.browser.fetch(`/api/conversations/${conversation.id}/messages`),
      await bob.browser.fetch(`/api/conversations/${conversation.id}`, { method: 'PATCH', json: { title: 'mine' } }),
      await bob.browser.fetch(`/api/conversations/${conversation.id}`, { method: 'DELETE' }),
      await asBobRuntime(`/api/conversations/${conversation.id}`),
      await asBobRuntime(`/api/conversations/${conversation.id}/messages`, {
        method: 'POST',
        json: { role: 'assistant', content: 'injected' },
      }),
    ]) {
      expect(res.status).toBe(404);
    }
    const bobs = await json(await bob.browser.fetch('/api/conversations'));
    expect(bobs.items.map((c: { id: string }) => c.id)).not.toContain(conversation.id);
    expect((await json(await alice.browser.fetch(`/api/conversations/${conversation.id}`))).title).toBe('');
  });

  it('renames and deletes', async () => {
    const conversation = await json(await alice.browser.fetch('/api/conversations', { method: 'POST', json: {} }));
    const renamed = await alice.browser.fetch(`/api/conversations/${conversation.id}`, {
      method: 'PATCH',
      json: { title: 'Plans' },
    });
    expect((await json(renamed)).title).toBe('Plans');
    expect((await alice.browser.fetch(`/api/conversations/${conversation.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await alice.browser.fetch(`/api/conversations/${conversation.id}`)).status).toBe(404);
    expect((await alice.browser.fetch('/api/conversations/not-an-id')).status).toBe(400);
    const tooLong = await alice.browser.fetch('/api/conversations', {
      method: 'POST',
      json: { title: 'x'.repeat(201) },
    });
    expect((await json(tooLong)).error.field).toBe('body.title');
  });
});

describe('credits', () => {
  it('shows the balance and the ledger; an admin grant is one ledger row, idempotent by key', async () => {
    const admin = await signUp(t);
    await new PlatformStore(t.platform.db).setUserRole(admin.userId, 'admin');
    const grant = (amount: string, key?: string, memo = 'support') =>
      admin.browser.fetch(`/api/admin/tenants/${alice.tenantId}/credits`, {
        method: 'POST',
        json: { amount, memo },
        ...(key ? { headers: { 'idempotency-key': key } } : {}),
      });
    const first = await grant('2.50', 'grant-0001');
    expect(first.status).toBe(201);
    expect(await json(first)).toMatchObject({
      kind: 'admin_grant',
      amount: { amount: '2.50', micros: '2500000' },
      balanceAfter: { amount: '12.50' },
      createdBy: admin.userId,
    });
    const replay = await grant('2.50', 'grant-0001');
    expect(replay.status).toBe(200);
    expect((await grant('3.00', 'grant-0001')).status).toBe(409);
    expect((await grant('-1')).status).toBe(400);
    expect((await grant('0.0000001')).status).toBe(400);
    expect((await grant('1', 'bad key!')).status).toBe(400);
    // Users cannot grant themselves credit.
    expect(
      (
        await alice.browser.fetch(`/api/admin/tenants/${alice.tenantId}/credits`, {
          method: 'POST',
          json: { amount: '5' },
        })
      ).status,
    ).toBe(403);

    const credits = await json(await alice.browser.fetch('/api/credits'));
    expect(credits).toEqual({ balance: '12.50', balanceMicros: '12500000', freeCreditUsed: true });
    const ledger = await json(await alice.browser.fetch('/api/credits/ledger?limit=1'));
    expect(ledger.items).toMatchObject([{ kind: 'admin_grant', memo: 'support' }]);
    const older = await json(await alice.browser.fetch(`/api/credits/ledger?limit=5&cursor=${ledger.nextCursor}`));
    expect(older.items).toMatchObject([{ kind: 'free_credit', amount: { amount: '10.00' } }]);
    expect(older.nextCursor).toBeNull();
    // Bob's ledger does not show alice's grant.
    expect((await json(await bob.browser.fetch('/api/credits/ledger'))).items).toHaveLength(1);
  });

  it('lists tenants for admins, filtered and paginated', async () => {
    const admin = await signUp(t);
    await new PlatformStore(t.platform.db).setUserRole(admin.userId, 'admin');
    const page = await json(await admin.browser.fetch('/api/admin/tenants?limit=2'));
    expect(page.items).toHaveLength(2);
    expect(page.nextCursor).toBeTruthy();
    const rest = await json(await admin.browser.fetch(`/api/admin/tenants?limit=100&cursor=${page.nextCursor}`));
    const ids = [...page.items, ...rest.items].map((i: { id: string }) => i.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining([alice.tenantId, bob.tenantId]));
    const suspended = await json(await admin.browser.fetch('/api/admin/tenants?status=suspended'));
    expect(suspended.items).toEqual([]);
    expect((await alice.browser.fetch('/api/admin/tenants')).status).toBe(403);
  });
});

describe('public routes', () => {
  it('lists enabled models with user prices, and the configured sign-in methods', async () => {
    const { seedModels } = await import('../src/models.js');
    await seedModels(new PlatformStore(t.platform.db));
    await t.platform.db.updateTable('models').set({ enabled: false }).where('name', '=', 'claude-opus-4').execute();
    const models = await json(await t.browser().fetch('/api/public/models'));
    const names = models.items.map((m: { name: string }) => m.name);
    expect(names).toContain('gpt-4o');
    expect(names).not.toContain('claude-opus-4');
    expect(models.items.find((m: { name: string }) => m.name === 'gpt-4o').pricing).toMatchObject({
      inputPerMillion: '3.25',
      outputPerMillion: '13.00',
    });
    const providers = await json(await t.browser().fetch('/api/public/auth-providers'));
    expect(providers).toEqual({ emailPassword: true, twoFactor: ['totp'], social: [] });
  });
});
