import { addressSchema } from '@agentstack/chain';
import type { Clock } from '@agentstack/core';
import { type Kysely, withTransaction } from '@agentstack/db';
import type { Catalog } from './catalog.js';
import {
  type ComputeProvider,
  LABEL_NAME,
  LABEL_SERVER,
  LABEL_TYPE,
  LABEL_WALLET,
  type ProviderServer,
} from './providers/provider.js';
import type { Servers } from './servers.js';
import { actionsSql, ledgerSql, type SpawnDB, serversSql } from './store.js';

export interface ReconcileReport {
  checked: number;
  updated: number;
  /** Servers the provider no longer has: marked destroyed, deposit refunded. */
  lost: string[];
  /** Provider servers with our labels but no row (e.g. the database was lost): rows rebuilt from labels. */
  adopted: string[];
  /** Running actions whose runner went quiet: failed, so the server can be acted on again. */
  interrupted: string[];
  /** Provider servers whose row says destroyed (a delete that did not finish): removed on the provider. */
  removed: string[];
}

/**
 * Brings the database in line with the provider, which is the truth about servers; its labels
 * (`wallet=0x…`, `spawn-id`, …) are the second source of truth for ownership. Run at start and on demand
 * (`main.ts reconcile`, or periodically).
 */
export async function reconcile(deps: {
  db: Kysely<SpawnDB>;
  provider: ComputeProvider;
  servers: Servers;
  catalog: Catalog;
  clock: Clock;
  /** A running action not heard of for this long is considered abandoned (its process died). */
  staleAfterMs?: number;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}): Promise<ReconcileReport> {
  const report: ReconcileReport = { checked: 0, updated: 0, lost: [], adopted: [], interrupted: [], removed: [] };
  if (deps.provider.unavailableReason()) return report;
  const { db, provider } = deps;

  const stale = await actionsSql.stale(db, new Date(deps.clock.now().getTime() - (deps.staleAfterMs ?? 60_000)));
  for (const action of stale) {
    await actionsSql.finish(db, action.id, {
      status: 'error',
      code: 'interrupted',
      message: 'the process running this action stopped before it finished; the server shows what the provider reports',
    });
    report.interrupted.push(action.id);
  }

  const onProvider = await provider.list();
  const byProviderId = new Map(onProvider.map((s) => [s.providerId, s]));
  const byLabel = new Map(
    onProvider.flatMap((s) => (s.labels[LABEL_SERVER] ? [[s.labels[LABEL_SERVER], s] as const] : [])),
  );
  const known = new Set<string>();

  for (const row of await serversSql.live(db)) {
    report.checked += 1;
    known.add(row.id);
    if (await actionsSql.running(db, row.id)) continue; // its own action will record the outcome
    let found: ProviderServer | undefined =
      (row.provider_id ? byProviderId.get(row.provider_id) : undefined) ?? byLabel.get(row.id);
    // Absent from the list is not proof: ask for this one before declaring it gone.
    if (!found && row.provider_id) found = await provider.get(row.provider_id);
    if (!found) {
      deps.log?.warn(
        { server: row.id, providerId: row.provider_id },
        'server missing on the provider; marking destroyed',
      );
      await deps.servers.lost(row.id);
      report.lost.push(row.id);
      continue;
    }
    if (
      found.status !== row.status ||
      found.providerId !== row.provider_id ||
      found.ipv4 !== row.ipv4 ||
      (found.ssh?.port ?? null) !== row.ssh_port
    ) {
      await deps.servers.refresh(row.id, found);
      report.updated += 1;
    }
  }

  for (const server of onProvider) {
    const id = server.labels[LABEL_SERVER];
    if (!id || known.has(id)) continue;
    const wallet = addressSchema.safeParse(server.labels[LABEL_WALLET]);
    if (!wallet.success) {
      deps.log?.warn(
        { providerId: server.providerId },
        'provider server with spawn labels but no valid wallet label; left alone',
      );
      continue;
    }
    const existing = await serversSql.get(db, id);
    if (existing) {
      // Destroyed here (and refunded) but still on the provider: nobody pays for it, so it goes.
      if (existing.status === 'destroyed' && !(await actionsSql.running(db, id))) {
        deps.log?.warn(
          { server: id, providerId: server.providerId },
          'destroyed server still on the provider; removing it',
        );
        await provider.delete(server.providerId).then(
          () => report.removed.push(id),
          (err) => deps.log?.warn({ err, server: id }, 'could not remove a destroyed server from the provider'),
        );
      }
      continue;
    }
    const typeSlug = server.type ?? server.labels[LABEL_TYPE] ?? '';
    const type = deps.catalog.types[typeSlug];
    if (!type) continue;
    await withTransaction(db, async (trx) => {
      await ledgerSql.ensureAccount(trx, wallet.data);
      const baseName = server.labels[LABEL_NAME] ?? id.toLowerCase().replace(/_/g, '-');
      const taken = await trx
        .selectFrom('servers')
        .select('id')
        .where('owner', '=', wallet.data)
        .where('name', '=', baseName)
        .where('status', '<>', 'destroyed')
        .executeTakeFirst();
      await trx
        .insertInto('servers')
        .values({
          id,
          owner: wallet.data,
          name: taken ? `${baseName.slice(0, 50)}-${id.slice(-8).toLowerCase()}` : baseName,
          type: type.slug,
          image: server.image ?? 'unknown',
          location: server.location ?? 'unknown',
          provider: provider.name,
          provider_id: server.providerId,
          status: server.status,
          ipv4: server.ipv4,
          ipv6: server.ipv6,
          ssh_host: server.ssh?.host ?? null,
          ssh_port: server.ssh?.port ?? null,
          ssh_user: server.ssh?.user ?? null,
          cores: type.cores,
          memory_gb: type.memoryGb,
          disk_gb: type.diskGb,
          // The deposit record went with the database: the daily sweep refills it from the owner's balance.
          deposit_remaining: 0n,
          burn_per_day: type.burnPerDay,
          user_data_sealed: null,
          webhook_url: null,
          webhook_secret_sealed: null,
          auto_destroy_at: null,
          last_burn_day: null,
          destroyed_at: null,
        })
        .execute();
    });
    report.adopted.push(id);
  }
  if (
    report.updated + report.lost.length + report.adopted.length + report.interrupted.length + report.removed.length >
    0
  ) {
    deps.log?.info({ ...report }, 'reconciled with the provider');
  }
  return report;
}
