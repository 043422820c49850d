import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, type Logger, newId, notFound } from '@agentstack/core';
import { withTransaction } from '@agentstack/db';
import type { PlatformDB, TransactionScopedKysely } from './db.js';
import type { TenantRuntimeRequester } from './runtime-requester.js';
import { type LedgerRow, PlatformStore, type TenantRow } from './store.js';

const TENANT_ID = /^ten_[0-9A-Za-z]{22}$/;

/** Where a tenant's files live: `<tenant data dir>/<tenant id>/` (its workspace is `workspace/` inside). */
export function tenantDir(tenantDataDir: string, tenantId: string): string {
  // The id becomes a path: refuse anything that is not exactly an id (no `..`, no separators).
  if (!TENANT_ID.test(tenantId)) throw new Error(`not a tenant id: ${JSON.stringify(tenantId)}`);
  return join(tenantDataDir, tenantId);
}

export const tenantWorkspaceDir = (tenantDataDir: string, tenantId: string) =>
  join(tenantDir(tenantDataDir, tenantId), 'workspace');

/**
 * A tenant's life after sign-up: suspension by an admin, credit grants, and deletion of the whole account.
 */
export class TenantLifecycle {
  constructor(
    private readonly deps: {
      db: TransactionScopedKysely;
      requester: TenantRuntimeRequester;
      tenantDataDir: string;
      log: Logger;
    },
  ) {}

  /** Suspends a tenant: its user is signed out everywhere and refused until unsuspended; its runtime is stopped. */
  async suspend(tenantId: string, { reason, by }: { reason: string | null; by: string }): Promise<TenantRow> {
    const tenant = await this.inTransaction(async (store) => {
      const current = await store.lockTenant(tenantId);
      if (!current) throw notFound('tenant');
      if (current.status === 'suspended') return current;
      const updated = (await store.setTenantStatus(tenantId, 'suspended', reason))!;
      await store.deleteSessionsOfUser(current.user_id);
      this.deps.db.afterCommit(() =>
        this.deps.requester.stop({ tenantId, runtimeId: updated.runtime_id, reason: 'suspended' }),
      );
      return updated;
    });
    this.deps.log.info({ tenantId, by, reason }, 'tenant suspended');
    return tenant;
  }

  async unsuspend(tenantId: string, { by }: { by: string }): Promise<TenantRow> {
    const tenant = await this.inTransaction(async (store) => {
      const current = await store.lockTenant(tenantId);
      if (!current) throw notFound('tenant');
      if (current.status !== 'suspended') return current;
      const updated = (await store.setTenantStatus(tenantId, 'active', null))!;
      this.deps.db.afterCommit(() => this.deps.requester.start({ tenantId, runtimeId: updated.runtime_id }));
      return updated;
    });
    this.deps.log.info({ tenantId, by }, 'tenant unsuspended');
    return tenant;
  }

  /**
   * Credits a tenant (an admin grant). `idempotencyKey` makes a retried request a no-op that returns the
   * first entry.
   */
  async grantCredits(
    tenantId: string,
    {
      amountMicros,
      memo,
      by,
      idempotencyKey,
    }: { amountMicros: bigint; memo: string | null; by: string; idempotencyKey?: string },
  ): Promise<{ entry: LedgerRow; created: boolean }> {
    return this.inTransaction(async (store) => {
      if (!(await store.findTenant(tenantId))) throw notFound('tenant');
      return store.postLedgerEntry({
        tenantId,
        amountMicros,
        kind: 'admin_grant',
        reference: idempotencyKey ?? newId('grant'),
        memo,
        createdBy: by,
      });
    });
  }

  /**
   * Deletes an account and everything of its tenant, in an order that converges when retried:
   * 1. the runtime is destroyed (awaited: if the orchestrator fails, nothing is deleted yet);
   * 2. the tenant's files (workspace) are removed;
   * 3. one transaction writes the tenant's lifetime totals to tenant_closures (accounting keeps amounts,
   *    never who), then deletes the tenant — conversations, messages, usage logs, ledger, credits and API
   *    keys go with it (ON DELETE CASCADE) — and the user with its sessions, OAuth accounts, 2FA secrets
   *    and pending verifications.
   */
  async deleteAccount(userId: string, reason: 'user_deleted' | 'admin_deleted'): Promise<{ tenantId: string | null }> {
    const store = new PlatformStore(this.deps.db);
    const user = await store.findUser(userId);
    if (!user) throw notFound('user');
    const tenant = await store.findTenantOfUser(userId);
    if (tenant) {
      try {
        await this.deps.requester.destroy({ tenantId: tenant.id, runtimeId: tenant.runtime_id });
      } catch (err) {
        this.deps.log.error({ err, tenantId: tenant.id }, 'runtime destroy failed; account not deleted');
        throw new AppError(
          'runtime_destroy_failed',
          'your agent could not be stopped, so nothing was deleted yet; try again in a minute',
          503,
        );
      }
      await rm(tenantDir(this.deps.tenantDataDir, tenant.id), { recursive: true, force: true });
    }
    await this.inTransaction(async (trxStore) => {
      if (tenant) {
        const locked = await trxStore.lockTenant(tenant.id);
        if (locked) {
          await trxStore.insertClosure(locked, reason, await trxStore.tenantTotals(tenant.id));
          await trxStore.deleteTenant(tenant.id);
        }
      }
      // Pending verifications carry the user's id or email (password reset, 2FA attempts, email change).
      await trxStore.db
        .deleteFrom('verifications')
        .where((eb) =>
          eb.or([
            eb('identifier', '=', user.email),
            eb('value', 'like', `%${escapeLike(userId)}%`),
            eb('identifier', 'like', `%${escapeLike(userId)}%`),
            eb('value', 'like', `%${escapeLike(user.email)}%`),
          ]),
        )
        .execute();
      await trxStore.deleteUser(userId);
    });
    this.deps.log.info({ tenantId: tenant?.id ?? null, reason }, 'account deleted');
    return { tenantId: tenant?.id ?? null };
  }

  private inTransaction<T>(fn: (store: PlatformStore) => Promise<T>): Promise<T> {
    return withTransaction<PlatformDB, T>(this.deps.db, (trx) => fn(new PlatformStore(trx)));
  }
}

const escapeLike = (value: string) => value.replace(/[\\%_]/g, '\\$&');
