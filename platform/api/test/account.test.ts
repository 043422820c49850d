import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newId } from '@agentstack/core';
import { sql } from '@agentstack/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlatformStore } from '../src/store.js';
import { tenantDir, tenantWorkspaceDir } from '../src/tenants.js';
import { json, type SignedUp, signUp, startTestPlatform, type TestPlatform, totp } from './support/helpers.js';

let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(async () => {
  await t?.stop();
});

/**
 * Every row of every table, in any text or json column, that mentions one of `needles`: a sweep that does
 * not depend on knowing which tables hold what.
 */
async function rowsMentioning(needles: string[]): Promise<{ table: string; column: string; count: number }[]> {
  const { rows: columns } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = 'public' and data_type in ('text', 'character varying', 'jsonb', 'json')`.execute(
    t.platform.db,
  );
  const found: { table: string; column: string; count: number }[] = [];
  for (const { table_name, column_name } of columns) {
    for (const needle of needles) {
      const { rows } = await sql<{ n: string }>`
        select count(*)::text as n from ${sql.table(table_name)}
        where ${sql.ref(column_name)}::text ilike ${`%${needle}%`}`.execute(t.platform.db);
      const count = Number(rows[0]!.n);
      if (count > 0) found.push({ table: table_name, column: column_name, count });
    }
  }
  return found;
}

/** A user with a bit of everything: conversations, messages, usage, ledger rows, 2FA, files, extra sessions. */
async function busyUser(): Promise<SignedUp & { tenantId: string }> {
  const user = await signUp(t);
  const store = new PlatformStore(t.platform.db);
  const tenant = (await store.findTenantOfUser(user.userId))!;
  const conversation = await json(
    await user.browser.fetch('/api/conversations', { method: 'POST', json: { title: 'Mine' } }),
  );
  await store.insertMessage({
    id: newId('msg'),
    tenantId: tenant.id,
    conversationId: conversation.id,
    role: 'user',
    content: 'hello',
    channel: 'web',
    metadata: { from: user.email },
  });
  const usageId = newId('usg');
  await t.platform.db
    .insertInto('usage_logs')
    .values({
      id: usageId,
      tenant_id: tenant.id,
      model: 'gpt-4o',
      model_id: null,
      provider: 'openai',
      input_tokens: 1000,
      output_tokens: 500,
      cost_micros: 7_500n,
      margin_micros: 2_250n,
      conversation_id: conversation.id,
      request_id: null,
    })
    .execute();
  await store.postLedgerEntry({ tenantId: tenant.id, amountMicros: -9_750n, kind: 'usage', reference: usageId });
  await store.postLedgerEntry({
    tenantId: tenant.id,
    amountMicros: 5_000_000n,
    kind: 'purchase',
    reference: 'cs_test_1',
  });
  const enable = await json(
    await user.browser.fetch('/api/auth/two-factor/enable', { method: 'POST', json: { password: user.password } }),
  );
  const secret = new URL(enable.totpURI).searchParams.get('secret')!;
  await user.browser.fetch('/api/auth/two-factor/verify-totp', { method: 'POST', json: { code: totp(secret) } });
  await mkdir(tenantWorkspaceDir(t.platform.config.tenantDataDir, tenant.id), { recursive: true });
  await writeFile(join(tenantWorkspaceDir(t.platform.config.tenantDataDir, tenant.id), 'notes.md'), '# notes\n');
  return { ...user, tenantId: tenant.id };
}

describe('DELETE /api/account', () => {
  it('removes every row and file of the tenant, keeps only anonymous accounting totals, and requests the runtime destroy', async () => {
    const user = await busyUser();
    const neighbour = await busyUser();
    const needles = [user.userId, user.tenantId, user.email];
    expect((await rowsMentioning(needles)).length).toBeGreaterThan(8);

    const wrong = await user.browser.fetch('/api/account', { method: 'DELETE', json: { confirm: 'someone@else.com' } });
    expect(wrong.status).toBe(400);
    expect((await json(wrong)).error.field).toBe('body.confirm');
    expect((await user.browser.fetch('/api/account', { method: 'DELETE' })).status).toBe(400);

    const res = await user.browser.fetch('/api/account', {
      method: 'DELETE',
      json: { confirm: user.email.toUpperCase() },
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ deleted: true, tenantId: user.tenantId });
    expect(res.headers.getSetCookie().some((c) => /agentsquads\.session_token=;.*Max-Age=0/.test(c))).toBe(true);

    // Nothing anywhere mentions the user, their email or their tenant — except the closure record.
    expect(await rowsMentioning(needles)).toEqual([{ table: 'tenant_closures', column: 'tenant_id', count: 1 }]);
    const closure = await t.platform.db
      .selectFrom('tenant_closures')
      .selectAll()
      .where('tenant_id', '=', user.tenantId)
      .executeTakeFirstOrThrow();
    expect(closure).toMatchObject({
      reason: 'user_deleted',
      credited_micros: 15_000_000n,
      purchased_micros: 5_000_000n,
      debited_micros: 9_750n,
      final_balance_micros: 14_990_250n,
      usage_calls: 1n,
      input_tokens: 1000n,
      output_tokens: 500n,
      cost_micros: 7_500n,
      margin_micros: 2_250n,
    });
    expect(existsSync(tenantDir(t.platform.config.tenantDataDir, user.tenantId))).toBe(false);
    expect(t.requester.of('destroy').map((c) => c.tenantId)).toContain(user.tenantId);
    expect((await user.browser.fetch('/api/account')).status).toBe(401);
    const signIn = await t.browser().fetch('/api/auth/sign-in/email', {
      method: 'POST',
      json: { email: user.email, password: user.password },
    });
    expect(signIn.status).toBe(401);

    // The neighbour is untouched.
    expect((await json(await neighbour.browser.fetch('/api/account'))).tenant.id).toBe(neighbour.tenantId);
    expect(existsSync(join(tenantWorkspaceDir(t.platform.config.tenantDataDir, neighbour.tenantId), 'notes.md'))).toBe(
      true,
    );
    expect((await rowsMentioning([neighbour.tenantId])).length).toBeGreaterThan(5);

    // The same email can sign up again, as a new user with a new tenant.
    const reborn = await t.browser().fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: user.email, password: user.password, name: 'Again' },
    });
    expect(reborn.status).toBe(200);
  });

  it('deletes nothing when the runtime cannot be destroyed, and succeeds on retry', async () => {
    const user = await busyUser();
    t.requester.failNext.destroy = new Error('orchestrator unreachable');
    const res = await user.browser.fetch('/api/account', { method: 'DELETE', json: { confirm: user.email } });
    expect(res.status).toBe(503);
    expect((await json(res)).error.code).toBe('runtime_destroy_failed');
    expect((await user.browser.fetch('/api/account')).status).toBe(200);
    expect(existsSync(join(tenantWorkspaceDir(t.platform.config.tenantDataDir, user.tenantId), 'notes.md'))).toBe(true);
    const retry = await user.browser.fetch('/api/account', { method: 'DELETE', json: { confirm: user.email } });
    expect(retry.status).toBe(200);
    expect(await rowsMentioning([user.userId, user.email])).toEqual([]);
  });

  it('an admin can delete a tenant; an impersonation session cannot delete the account', async () => {
    const admin = await signUp(t);
    await new PlatformStore(t.platform.db).setUserRole(admin.userId, 'admin');
    const user = await busyUser();
    const impersonating = t.browser();
    impersonating.cookies().set('agentsquads.session_token', admin.browser.cookies().get('agentsquads.session_token')!);
    const start = await impersonating.fetch('/api/auth/admin/impersonate-user', {
      method: 'POST',
      json: { userId: user.userId },
    });
    expect(start.status).toBe(200);
    const asUser = await json(await impersonating.fetch('/api/account'));
    expect(asUser).toMatchObject({ user: { id: user.userId }, impersonatedBy: admin.userId });
    const refused = await impersonating.fetch('/api/account', { method: 'DELETE', json: { confirm: user.email } });
    expect(refused.status).toBe(403);

    const res = await admin.browser.fetch(`/api/admin/tenants/${user.tenantId}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await rowsMentioning([user.userId, user.email])).toEqual([]);
    const closure = await t.platform.db
      .selectFrom('tenant_closures')
      .select('reason')
      .where('tenant_id', '=', user.tenantId)
      .executeTakeFirstOrThrow();
    expect(closure.reason).toBe('admin_deleted');
    expect((await admin.browser.fetch(`/api/admin/tenants/${user.tenantId}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('refuses a path-like tenant id for the files', () => {
    expect(() => tenantDir('/data/tenants', '../etc')).toThrow(/not a tenant id/);
    expect(() => tenantDir('/data/tenants', 'ten_../../../../etc/passwd')).toThrow(/not a tenant id/);
  });
});
