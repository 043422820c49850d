import { type Logger, newId } from '@agentstack/core';
import { issueApiKey } from './api-keys.js';
import type { TransactionScopedKysely } from './db.js';
import type { TenantRuntimeRequester } from './runtime-requester.js';
import { PlatformStore, type TenantRow } from './store.js';

export interface NewAccount {
  userId: string;
  /** `credential` for email + password, else the OAuth provider id. */
  providerId: string;
  accountId: string;
}

/**
 * First sign-up, by password or OAuth alike: user → tenant (active) → credits (the free credit, as a
 * ledger row) → tenant API key, in the transaction Better Auth opened for the user and its account; then,
 * after the commit, the runtime is requested.
 *
 * It runs as Better Auth's `account.create.before` database hook: the user row exists by then (same
 * transaction), and both sign-up paths create exactly one account row inside their transaction
 * (`/sign-up/email`, and the OAuth callback's user creation). Any error here rolls all of it back, the user
 * and the account included. The `after` hooks Better Auth offers run after its commit, which is why none
 * of this lives there.
 */
export class TenantProvisioner {
  constructor(
    private readonly deps: {
      db: TransactionScopedKysely;
      freeCreditMicros: bigint;
      requester: TenantRuntimeRequester;
      log: Logger;
    },
  ) {}

  async onAccountCreate(account: NewAccount): Promise<void> {
    const trx = this.deps.db.currentTransaction();
    const store = new PlatformStore(trx ?? this.deps.db);
    // Linking another provider to an existing user: it already has its tenant.
    if (await store.findTenantOfUser(account.userId)) return;
    if (!trx) throw new Error('refusing to create a tenant outside the sign-up transaction');
    const { tenant, apiKey } = await this.provision(store, account);
    this.deps.db.afterCommit(() => this.deps.requester.create({ tenantId: tenant.id, userId: account.userId, apiKey }));
    this.deps.log.info(
      { tenantId: tenant.id, userId: account.userId, provider: account.providerId },
      'tenant provisioned',
    );
  }

  /** The inserts, on the caller's transaction. Exported for tests and tools; the plaintext key is returned once. */
  async provision(store: PlatformStore, account: NewAccount): Promise<{ tenant: TenantRow; apiKey: string }> {
    await store.recordSignupProvider(account.userId, account.providerId, account.accountId);
    const tenant = await store.insertTenant(newId('ten'), account.userId);
    await store.insertCredits(tenant.id);
    if (this.deps.freeCreditMicros > 0n) {
      await store.postLedgerEntry({
        tenantId: tenant.id,
        amountMicros: this.deps.freeCreditMicros,
        kind: 'free_credit',
        reference: 'signup',
        memo: 'Welcome credit',
      });
    }
    const apiKey = await issueApiKey(store, tenant.id);
    return { tenant, apiKey };
  }
}
