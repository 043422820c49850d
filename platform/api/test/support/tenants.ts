import { newId } from '@agentstack/core';
import type { PlatformStore } from '../../src/store.js';

/**
 * A user with a tenant, its credits row and (when `credit` > 0) an admin grant, written straight to the
 * database: for tests of the store and the LLM proxy that need a tenant but not the sign-up path.
 */
export async function insertTenant(
  store: PlatformStore,
  { credit = 0n }: { credit?: bigint } = {},
): Promise<{ tenantId: string; userId: string }> {
  const userId = newId('usr');
  await store.db
    .insertInto('users')
    .values({
      id: userId,
      name: 'Test tenant',
      email: `${userId.toLowerCase()}@example.com`,
      email_verified: true,
      image: null,
      updated_at: new Date(),
      provider: null,
      provider_id: null,
      ban_reason: null,
      ban_expires: null,
    })
    .execute();
  const tenant = await store.insertTenant(newId('ten'), userId);
  await store.insertCredits(tenant.id);
  if (credit > 0n) await store.postLedgerEntry({ tenantId: tenant.id, amountMicros: credit, kind: 'admin_grant' });
  return { tenantId: tenant.id, userId };
}
