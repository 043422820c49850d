import { fileURLToPath } from 'node:url';
import { type Generated, type Kysely, sql, type Transaction } from '@agentstack/db';

export type { Transaction };

import type { ServerStatus } from './providers/provider.js';

export const spawnMigrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

export interface AccountsTable {
  owner: string;
  available: bigint;
  reserved: bigint;
  updated_at: Generated<Date>;
}

export type LedgerKind = 'deposit' | 'reserve' | 'burn' | 'topup' | 'refund' | 'fee_credit';

export interface LedgerTable {
  id: Generated<bigint>;
  owner: string;
  server_id: string | null;
  kind: LedgerKind;
  amount: bigint;
  available_after: bigint;
  reserved_after: bigint;
  reference: string | null;
  day: string | null;
  created_at: Generated<Date>;
}

export interface SshKeysTable {
  id: string;
  owner: string;
  name: string;
  public_key: string;
  fingerprint: string;
  md5: string;
  key_type: string;
  created_at: Generated<Date>;
}

export interface ServersTable {
  id: string;
  owner: string;
  name: string;
  type: string;
  image: string;
  location: string;
  provider: string;
  provider_id: string | null;
  status: ServerStatus;
  ipv4: string | null;
  ipv6: string | null;
  ssh_host: string | null;
  ssh_port: number | null;
  ssh_user: string | null;
  cores: number;
  memory_gb: string | number;
  disk_gb: number;
  deposit_remaining: bigint;
  burn_per_day: bigint;
  user_data_sealed: string | null;
  webhook_url: string | null;
  webhook_secret_sealed: string | null;
  auto_destroy_at: Date | null;
  last_burn_day: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  destroyed_at: Date | null;
}

export interface ServerKeysTable {
  server_id: string;
  key_id: string;
  public_key: string;
  md5: string;
  name: string;
}

export type ActionStatus = 'running' | 'success' | 'error';

export interface ActionsTable {
  id: string;
  owner: string;
  server_id: string;
  command: string;
  status: ActionStatus;
  progress: Generated<number>;
  error_code: string | null;
  error_message: string | null;
  secret_sealed: string | null;
  runner: string;
  heartbeat_at: Generated<Date>;
  started_at: Generated<Date>;
  finished_at: Date | null;
}

export interface WebhookDeliveriesTable {
  id: string;
  owner: string;
  server_id: string | null;
  event: string;
  dedupe_key: string;
  url: string;
  secret_sealed: string;
  payload: unknown;
  status: 'pending' | 'delivered' | 'failed';
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  last_error: string | null;
  created_at: Generated<Date>;
  delivered_at: Date | null;
}

export interface SpawnDB {
  accounts: AccountsTable;
  ledger: LedgerTable;
  ssh_keys: SshKeysTable;
  servers: ServersTable;
  server_keys: ServerKeysTable;
  actions: ActionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}

export type Db = Kysely<SpawnDB> | Transaction<SpawnDB>;
export type ServerRow = {
  [K in keyof ServersTable]: ServersTable[K] extends Generated<infer T> ? T : ServersTable[K];
};
export type ActionRow = {
  [K in keyof ActionsTable]: ActionsTable[K] extends Generated<infer T> ? T : ActionsTable[K];
};
export type SshKeyRow = {
  [K in keyof SshKeysTable]: SshKeysTable[K] extends Generated<infer T> ? T : SshKeysTable[K];
};

/** PostgreSQL's unique_violation, and which constraint it was. */
export function uniqueViolation(err: unknown): string | undefined {
  const e = err as { code?: string; constraint?: string };
  return e?.code === '23505' ? (e.constraint ?? 'unique') : undefined;
}

export interface Balance {
  available: bigint;
  reserved: bigint;
}

/**
 * The ledger's SQL. Each balance change is one UPDATE guarded by the CHECK constraints (no negative
 * balances, ever) plus its ledger row, inside the caller's transaction.
 */
export const ledgerSql = {
  async balance(db: Db, owner: string): Promise<Balance> {
    const row = await db
      .selectFrom('accounts')
      .select(['available', 'reserved'])
      .where('owner', '=', owner)
      .executeTakeFirst();
    return row ? { available: row.available, reserved: row.reserved } : { available: 0n, reserved: 0n };
  },

  async ensureAccount(db: Db, owner: string): Promise<void> {
    await db
      .insertInto('accounts')
      .values({ owner, available: 0n, reserved: 0n })
      .onConflict((oc) => oc.column('owner').doNothing())
      .execute();
  },

  /**
   * Moves `availableDelta` and `reservedDelta` on the owner's account if the result stays ≥ 0; returns the
   * balance after, or undefined when it would go negative.
   */
  async move(db: Db, owner: string, availableDelta: bigint, reservedDelta: bigint): Promise<Balance | undefined> {
    await this.ensureAccount(db, owner);
    const row = await db
      .updateTable('accounts')
      .set({
        available: sql<bigint>`available + ${availableDelta}::bigint`,
        reserved: sql<bigint>`reserved + ${reservedDelta}::bigint`,
        updated_at: sql<Date>`now()`,
      })
      .where('owner', '=', owner)
      .where(sql<boolean>`available + ${availableDelta}::bigint >= 0`)
      .where(sql<boolean>`reserved + ${reservedDelta}::bigint >= 0`)
      .returning(['available', 'reserved'])
      .executeTakeFirst();
    return row ? { available: row.available, reserved: row.reserved } : undefined;
  },

  async record(
    db: Db,
    entry: {
      owner: string;
      serverId?: string | null;
      kind: LedgerKind;
      amount: bigint;
      after: Balance;
      reference?: string;
      day?: string;
    },
  ): Promise<void> {
    await db
      .insertInto('ledger')
      .values({
        owner: entry.owner,
        server_id: entry.serverId ?? null,
        kind: entry.kind,
        amount: entry.amount,
        available_after: entry.after.available,
        reserved_after: entry.after.reserved,
        reference: entry.reference ?? null,
        day: entry.day ?? null,
      })
      .execute();
  },
};

export const keysSql = {
  insert(db: Db, row: Omit<SshKeyRow, 'created_at'>) {
    return db.insertInto('ssh_keys').values(row).returningAll().executeTakeFirstOrThrow();
  },
  get(db: Db, id: string) {
    return db.selectFrom('ssh_keys').selectAll().where('id', '=', id).executeTakeFirst();
  },
  list(db: Db, owner: string, limit: number, after?: { created: string; id: string }) {
    let query = db.selectFrom('ssh_keys').selectAll().where('owner', '=', owner);
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('created_at', '<', new Date(after.created)),
          eb.and([eb('created_at', '=', new Date(after.created)), eb('id', '<', after.id)]),
        ]),
      );
    }
    return query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
  },
  /** The caller's keys referenced by id or by name. */
  byRefs(db: Db, refs: string[]) {
    if (refs.length === 0) return Promise.resolve([] as SshKeyRow[]);
    return db
      .selectFrom('ssh_keys')
      .selectAll()
      .where((eb) => eb.or([eb('id', 'in', refs), eb('name', 'in', refs)]))
      .execute();
  },
  delete(db: Db, id: string) {
    return db.deleteFrom('ssh_keys').where('id', '=', id).executeTakeFirst();
  },
  countByMd5(db: Db, md5: string) {
    return db
      .selectFrom('ssh_keys')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('md5', '=', md5)
      .executeTakeFirstOrThrow()
      .then((r) => Number(r.n));
  },
};

export const serversSql = {
  get(db: Db, id: string) {
    return db.selectFrom('servers').selectAll().where('id', '=', id).executeTakeFirst() as Promise<
      ServerRow | undefined
    >;
  },
  /** Locks the row for the rest of the transaction. */
  getForUpdate(db: Db, id: string) {
    return db.selectFrom('servers').selectAll().where('id', '=', id).forUpdate().executeTakeFirst() as Promise<
      ServerRow | undefined
    >;
  },
  list(db: Db, owner: string, limit: number, status?: ServerStatus, after?: { created: string; id: string }) {
    let query = db.selectFrom('servers').selectAll().where('owner', '=', owner);
    query = status ? query.where('status', '=', status) : query.where('status', '<>', 'destroyed');
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('created_at', '<', new Date(after.created)),
          eb.and([eb('created_at', '=', new Date(after.created)), eb('id', '<', after.id)]),
        ]),
      );
    }
    return query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute() as Promise<ServerRow[]>;
  },
  live(db: Db) {
    return db.selectFrom('servers').selectAll().where('status', '<>', 'destroyed').execute() as Promise<ServerRow[]>;
  },
  update(db: Db, id: string, patch: Partial<Omit<ServerRow, 'id' | 'created_at'>>) {
    return db
      .updateTable('servers')
      .set({ ...patch, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst() as Promise<ServerRow | undefined>;
  },
  keys(db: Db, serverId: string) {
    return db.selectFrom('server_keys').selectAll().where('server_id', '=', serverId).orderBy('key_id').execute();
  },
  /**
   * Live servers not yet charged for `day`, locked so that concurrent sweepers (other replicas) skip them
   * instead of waiting or charging twice.
   */
  dueForBurn(db: Db, day: string, limit: number) {
    return db
      .selectFrom('servers')
      .selectAll()
      .where('status', 'not in', ['destroyed', 'destroying'])
      .where((eb) => eb.or([eb('last_burn_day', 'is', null), eb('last_burn_day', '<', day)]))
      .where('provider_id', 'is not', null)
      .orderBy('id')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute() as Promise<ServerRow[]>;
  },
  dueForAutoDestroy(db: Db, now: Date, limit: number) {
    return db
      .selectFrom('servers')
      .selectAll()
      .where('status', 'not in', ['destroyed', 'destroying'])
      .where('auto_destroy_at', '<=', now)
      .orderBy('auto_destroy_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute() as Promise<ServerRow[]>;
  },
};

export const actionsSql = {
  get(db: Db, id: string) {
    return db.selectFrom('actions').selectAll().where('id', '=', id).executeTakeFirst() as Promise<
      ActionRow | undefined
    >;
  },
  running(db: Db, serverId: string) {
    return db
      .selectFrom('actions')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('status', '=', 'running')
      .executeTakeFirst() as Promise<ActionRow | undefined>;
  },
  finish(db: Db, id: string, outcome: { status: 'success' } | { status: 'error'; code: string; message: string }) {
    return db
      .updateTable('actions')
      .set({
        status: outcome.status,
        progress: outcome.status === 'success' ? 100 : sql<number>`progress`,
        error_code: outcome.status === 'error' ? outcome.code : null,
        error_message: outcome.status === 'error' ? outcome.message.slice(0, 1000) : null,
        finished_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .execute();
  },
  heartbeat(db: Db, runner: string) {
    return db
      .updateTable('actions')
      .set({ heartbeat_at: sql<Date>`now()` })
      .where('runner', '=', runner)
      .where('status', '=', 'running')
      .execute();
  },
  /** Running actions whose runner has not been heard of since `before`. */
  stale(db: Db, before: Date) {
    return db
      .selectFrom('actions')
      .selectAll()
      .where('status', '=', 'running')
      .where('heartbeat_at', '<', before)
      .execute() as Promise<ActionRow[]>;
  },
};

export const deliveriesSql = {
  /** Queues a delivery once per dedupe key; false when that event was already queued. */
  async enqueue(
    db: Db,
    row: Omit<
      WebhookDeliveriesTable,
      'attempts' | 'next_attempt_at' | 'created_at' | 'delivered_at' | 'last_error' | 'status'
    >,
  ) {
    const inserted = await db
      .insertInto('webhook_deliveries')
      .values({ ...row, payload: JSON.stringify(row.payload), status: 'pending' })
      .onConflict((oc) => oc.column('dedupe_key').doNothing())
      .returning('id')
      .executeTakeFirst();
    return inserted !== undefined;
  },
  due(db: Db, now: Date, limit: number) {
    return db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  },
  forServer(db: Db, serverId: string) {
    return db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('server_id', '=', serverId)
      .orderBy('created_at')
      .execute();
  },
};
