import { randomBytes } from 'node:crypto';
import {
  AppError,
  type Clock,
  conflict,
  forbidden,
  formatUsdc,
  newId,
  notFound,
  type SecretBox,
  unprocessable,
  utcDay,
} from '@agentstack/core';
import { type Kysely, withTransaction } from '@agentstack/db';
import type { Catalog, ServerType } from './catalog.js';
import {
  type ComputeProvider,
  LABEL_NAME,
  LABEL_SERVER,
  LABEL_TYPE,
  LABEL_WALLET,
  ProviderError,
  type ProviderServer,
  type ProviderSshKey,
  type ServerStatus,
} from './providers/provider.js';
import {
  type ActionRow,
  actionsSql,
  ledgerSql,
  type ServerRow,
  type SpawnDB,
  serversSql,
  type Transaction,
  uniqueViolation,
} from './store.js';

export type { Transaction };

export interface SpawnDeps {
  db: Kysely<SpawnDB>;
  provider: ComputeProvider;
  catalog: Catalog;
  clock: Clock;
  /** Seals user_data and webhook secrets at rest. */
  userDataBox: SecretBox;
  webhookBox: SecretBox;
  log?: {
    info(obj: object, msg?: string): void;
    warn(obj: object, msg?: string): void;
    error(obj: object, msg?: string): void;
  };
}

export type PowerCommand = 'start' | 'stop' | 'reboot';

export interface CreateServerInput {
  name: string;
  type: string;
  image: string;
  location?: string | undefined;
  ssh_keys?: string[] | undefined;
  user_data?: string | undefined;
  webhook?: { url: string; secret: string } | undefined;
}

const DAY_MS = 86_400_000;

/** The JSON shape of a server in responses. */
export function serverView(row: ServerRow, now: Date) {
  const burn = row.burn_per_day;
  const remaining = row.deposit_remaining;
  const lastCharged = row.last_burn_day
    ? Date.parse(`${row.last_burn_day}T00:00:00Z`)
    : Date.parse(`${utcDay(now)}T00:00:00Z`) - DAY_MS;
  const coveredDays = burn > 0n ? Number(remaining / burn) : 0;
  const expires = row.status === 'destroyed' ? null : new Date(lastCharged + DAY_MS * (1 + coveredDays)).toISOString();
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    type: row.type,
    image: row.image,
    location: row.location,
    provider: row.provider,
    cores: row.cores,
    memory_gb: Number(row.memory_gb),
    disk_gb: row.disk_gb,
    public_net: { ipv4: row.ipv4, ipv6: row.ipv6 },
    ssh: row.ssh_host && row.ssh_port ? { host: row.ssh_host, port: row.ssh_port, user: row.ssh_user ?? 'root' } : null,
    deposit: {
      remaining: formatUsdc(remaining),
      remaining_atomic: remaining.toString(),
      burn_per_day: formatUsdc(burn),
      burn_per_day_atomic: burn.toString(),
      expires_at: expires,
      auto_destroy_at: row.auto_destroy_at ? row.auto_destroy_at.toISOString() : null,
    },
    labels: { [LABEL_WALLET]: row.owner },
    created_at: row.created_at.toISOString(),
    destroyed_at: row.destroyed_at ? row.destroyed_at.toISOString() : null,
  };
}
export type ServerView = ReturnType<typeof serverView>;

export function actionView(row: ActionRow) {
  return {
    id: row.id,
    command: row.command,
    status: row.status,
    progress: row.progress,
    server_id: row.server_id,
    started_at: row.started_at.toISOString(),
    finished_at: row.finished_at ? row.finished_at.toISOString() : null,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
  };
}

const TRANSITIONAL: ServerStatus[] = ['initializing', 'stopping', 'migrating', 'rebuilding', 'destroying'];

/**
 * Servers: the state machine, deposits reserved and refunded, and the provider actions, each run as a
 * spawn action (`GET /v1/actions/:id`). Every state change and every money movement happens in one
 * transaction with the server row locked; provider calls run after commit, in the background.
 */
export class Servers {
  readonly runnerId = `run_${randomBytes(8).toString('hex')}`;
  private readonly inFlight = new Set<Promise<void>>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly deps: SpawnDeps) {}

  /** Keeps this runner's actions marked alive, so reconciliation can tell abandoned ones. */
  startHeartbeat(intervalMs = 10_000): void {
    this.heartbeat ??= setInterval(() => {
      void actionsSql.heartbeat(this.deps.db, this.runnerId).catch(() => undefined);
    }, intervalMs).unref();
  }

  /** Waits for every action this process started (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    await this.idle();
  }

  typeOf(slug: string): ServerType {
    const type = this.deps.catalog.types[slug];
    if (!type) throw unprocessable('invalid_request', `unknown type ${slug}`);
    return type;
  }

  /** 422 naming what the provider offers, for a type, image or location it cannot provide. */
  checkOffer(input: { type?: string; image?: string; location?: string }): void {
    const offer = this.deps.provider.offer();
    const provider = this.deps.provider.name;
    const check = (field: 'type' | 'image' | 'location', value: string | undefined, offered: string[]) => {
      if (value === undefined || offered.includes(value)) return;
      throw new AppError(
        'invalid_request',
        `${field} ${JSON.stringify(value)} is not offered by the ${provider} provider; it offers: ${offered.join(', ')}`,
        422,
        { field: `body.${field}`, details: { offered } },
      );
    };
    check('type', input.type, offer.types);
    check('image', input.image, offer.images);
    check('location', input.location, offer.locations);
  }

  defaultLocation(): string {
    return this.deps.provider.offer().locations[0] as string;
  }

  private async owned(db: Kysely<SpawnDB> | Transaction<SpawnDB>, owner: string, id: string, lock = false) {
    const row = lock ? await serversSql.getForUpdate(db, id) : await serversSql.get(db, id);
    if (!row) throw notFound('server');
    if (row.owner !== owner) throw forbidden('this server belongs to another wallet');
    return row;
  }

  async get(owner: string, id: string): Promise<ServerRow> {
    return this.owned(this.deps.db, owner, id);
  }

  get db(): Kysely<SpawnDB> {
    return this.deps.db;
  }

  providerName(): string {
    return this.deps.provider.name;
  }

  providerUnavailable(): string | undefined {
    return this.deps.provider.unavailableReason();
  }

  /** What can be refused without knowing the caller (so it is refused before any payment). */
  precheckCreate(input: CreateServerInput): void {
    const offer = this.deps.provider.offer();
    this.checkOffer({ type: input.type, image: input.image, location: input.location ?? this.defaultLocation() });
    const unavailable = this.deps.provider.unavailableReason();
    if (unavailable)
      throw new AppError(
        'upstream_unavailable',
        `the ${this.deps.provider.name} provider is unavailable: ${unavailable}`,
        503,
      );
    if ((input.ssh_keys ?? []).length === 0 && !offer.passwordLogin) {
      throw new AppError(
        'invalid_request',
        `the ${this.deps.provider.name} provider has no password login: give at least one SSH key`,
        422,
        { field: 'body.ssh_keys' },
      );
    }
    if (input.user_data && offer.userData === 'shell' && input.user_data.startsWith('#cloud-config')) {
      throw new AppError(
        'invalid_request',
        `the ${this.deps.provider.name} provider runs user_data as a shell script; #cloud-config needs cloud-init (Hetzner)`,
        422,
        { field: 'body.user_data' },
      );
    }
  }

  /** Creates the row, reserves the deposit and starts the provider's create, all or nothing. */
  async create(owner: string, input: CreateServerInput) {
    const type = this.typeOf(input.type);
    const location = input.location ?? this.defaultLocation();
    this.precheckCreate(input);
    const refs = [...new Set(input.ssh_keys ?? [])];
    const serverId = newId('srv');
    const now = this.deps.clock.now();
    const { row, action, balance, keys } = await withTransaction(this.deps.db, async (trx) => {
      const found = refs.length
        ? await trx
            .selectFrom('ssh_keys')
            .selectAll()
            .where((eb) => eb.or([eb('id', 'in', refs), eb('name', 'in', refs)]))
            .where('owner', '=', owner)
            .execute()
        : [];
      for (const ref of refs) {
        if (!found.some((k) => k.id === ref || k.name === ref)) {
          const foreign = await trx.selectFrom('ssh_keys').select('id').where('id', '=', ref).executeTakeFirst();
          if (foreign) throw forbidden(`SSH key ${ref} belongs to another wallet`);
          throw new AppError('not_found', `SSH key ${ref} not found (register it with POST /v1/ssh-keys)`, 404, {
            field: 'body.ssh_keys',
          });
        }
      }
      const balance = await ledgerSql.move(trx, owner, -type.deposit, type.deposit);
      if (!balance) {
        const current = await ledgerSql.balance(trx, owner);
        throw unprocessable(
          'insufficient_deposit',
          `a ${type.slug} server needs a ${formatUsdc(type.deposit)} USDC deposit; your available spawn balance is ${formatUsdc(current.available)} USDC (top up with POST /v1/balance/deposit)`,
          {
            required: formatUsdc(type.deposit),
            available: formatUsdc(current.available),
            shortfall: formatUsdc(type.deposit - current.available),
          },
        );
      }
      let row: ServerRow;
      try {
        row = (await trx
          .insertInto('servers')
          .values({
            id: serverId,
            owner,
            name: input.name,
            type: type.slug,
            image: input.image,
            location,
            provider: this.deps.provider.name,
            provider_id: null,
            status: 'initializing',
            ipv4: null,
            ipv6: null,
            ssh_host: null,
            ssh_port: null,
            ssh_user: null,
            cores: type.cores,
            memory_gb: type.memoryGb,
            disk_gb: type.diskGb,
            deposit_remaining: type.deposit,
            burn_per_day: type.burnPerDay,
            user_data_sealed: input.user_data ? this.deps.userDataBox.seal(input.user_data, serverId) : null,
            webhook_url: input.webhook?.url ?? null,
            webhook_secret_sealed: input.webhook ? this.deps.webhookBox.seal(input.webhook.secret, serverId) : null,
            auto_destroy_at: null,
            last_burn_day: null,
            destroyed_at: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow()) as ServerRow;
      } catch (err) {
        if (uniqueViolation(err) === 'servers_owner_name') {
          throw new AppError('conflict', `you already have a server named ${input.name}`, 409, { field: 'body.name' });
        }
        throw err;
      }
      await ledgerSql.record(trx, { owner, serverId, kind: 'reserve', amount: type.deposit, after: balance });
      for (const key of found) {
        await trx
          .insertInto('server_keys')
          .values({ server_id: serverId, key_id: key.id, public_key: key.public_key, md5: key.md5, name: key.name })
          .execute();
      }
      const action = await this.insertAction(trx, owner, serverId, 'create_server');
      return { row, action, balance, keys: found };
    });

    const sshKeys: ProviderSshKey[] = keys.map((k) => ({
      id: k.id,
      name: k.name,
      publicKey: k.public_key,
      md5: k.md5,
    }));
    this.run(action, async () => {
      let created: Awaited<ReturnType<ComputeProvider['create']>>;
      try {
        created = await this.deps.provider.create({
          serverId,
          name: input.name,
          type,
          image: input.image,
          location,
          sshKeys,
          ...(input.user_data ? { userData: input.user_data } : {}),
          labels: {
            [LABEL_WALLET]: owner,
            [LABEL_SERVER]: serverId,
            [LABEL_NAME]: input.name,
            [LABEL_TYPE]: type.slug,
          },
        });
      } catch (err) {
        // Nothing was created: the server is gone and its whole deposit goes back.
        await this.markDestroyed(serverId);
        throw err;
      }
      await serversSql.update(this.deps.db, serverId, this.fromProvider(created.server));
      return created.rootPassword ? { secret: created.rootPassword } : undefined;
    });
    return { row, action, balance, now };
  }

  /** Provider facts → our columns. */
  private fromProvider(server: ProviderServer): Partial<ServerRow> {
    return {
      provider_id: server.providerId,
      status: server.status,
      ipv4: server.ipv4,
      ipv6: server.ipv6,
      ssh_host: server.ssh?.host ?? null,
      ssh_port: server.ssh?.port ?? null,
      ssh_user: server.ssh?.user ?? null,
    };
  }

  private async insertAction(trx: Transaction<SpawnDB>, owner: string, serverId: string, command: string) {
    try {
      return (await trx
        .insertInto('actions')
        .values({
          id: newId('act'),
          owner,
          server_id: serverId,
          command,
          status: 'running',
          error_code: null,
          error_message: null,
          secret_sealed: null,
          runner: this.runnerId,
          finished_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow()) as ActionRow;
    } catch (err) {
      if (uniqueViolation(err) === 'actions_one_running') {
        throw conflict('another action is still running on this server; wait for it (GET /v1/actions/:id)');
      }
      throw err;
    }
  }

  /** Runs an action's work in the background and records how it ended. */
  private run(action: ActionRow, work: () => Promise<{ secret: string } | undefined>): void {
    const task = (async () => {
      try {
        const result = await work();
        if (result && 'secret' in result) {
          await this.deps.db
            .updateTable('actions')
            .set({ secret_sealed: this.deps.userDataBox.seal(result.secret, action.id) })
            .where('id', '=', action.id)
            .execute();
        }
        await actionsSql.finish(this.deps.db, action.id, { status: 'success' });
      } catch (err) {
        const code = err instanceof ProviderError ? err.code : 'action_failed';
        const message = err instanceof Error ? err.message : String(err);
        this.deps.log?.warn({ action: action.id, command: action.command, code, err: message }, 'action failed');
        await actionsSql.finish(this.deps.db, action.id, { status: 'error', code, message }).catch(() => undefined);
      }
    })();
    this.inFlight.add(task);
    void task.finally(() => this.inFlight.delete(task));
  }

  /** After a failed or finished destroy: the row is destroyed and the unused deposit returns to available. */
  private async markDestroyed(serverId: string): Promise<ServerRow | undefined> {
    return withTransaction(this.deps.db, async (trx) => {
      const row = await serversSql.getForUpdate(trx, serverId);
      if (!row || row.status === 'destroyed') return row;
      const refund = row.deposit_remaining;
      if (refund > 0n) {
        const after = await ledgerSql.move(trx, row.owner, refund, -refund);
        if (!after) throw new Error(`refund of ${serverId} would make the reserved balance negative`);
        await ledgerSql.record(trx, { owner: row.owner, serverId, kind: 'refund', amount: refund, after });
      }
      return serversSql.update(trx, serverId, {
        status: 'destroyed',
        deposit_remaining: 0n,
        auto_destroy_at: null,
        destroyed_at: this.deps.clock.now(),
      });
    });
  }

  /**
   * Checks the state machine and records the action and the transitional status in one transaction, then
   * runs `work` in the background; `after` decides the final status from what the provider did.
   */
  private async act(
    owner: string | null,
    serverId: string,
    command: string,
    allowed: ServerStatus[],
    transitional: ServerStatus,
    prepare: (trx: Transaction<SpawnDB>, row: ServerRow) => Promise<void>,
    work: (row: ServerRow) => Promise<Partial<ServerRow> | undefined>,
  ) {
    const { row, action } = await withTransaction(this.deps.db, async (trx) => {
      const row =
        owner === null ? await serversSql.getForUpdate(trx, serverId) : await this.owned(trx, owner, serverId, true);
      if (!row) throw notFound('server');
      if (row.status === 'destroyed') throw new AppError('not_found', 'server not found (it was destroyed)', 404);
      const running = await actionsSql.running(trx, row.id);
      if (running)
        throw conflict(`action ${running.id} (${running.command}) is still running on this server`, {
          action: running.id,
        });
      if (!allowed.includes(row.status)) {
        throw conflict(`cannot ${command.replace(/_server$/, '').replace('_', ' ')} a server that is ${row.status}`, {
          status: row.status,
        });
      }
      if (!row.provider_id) throw conflict('the server has not been created on the provider yet');
      await prepare(trx, row);
      const action = await this.insertAction(trx, row.owner, row.id, command);
      const updated = await serversSql.update(trx, row.id, { status: transitional });
      return { row: updated as ServerRow, action };
    });
    this.run(action, async () => {
      try {
        const patch = await work(row);
        if (command !== 'delete_server') {
          const fresh = await this.deps.provider.get(row.provider_id as string);
          await serversSql.update(this.deps.db, row.id, { ...(fresh ? this.fromProvider(fresh) : {}), ...patch });
        }
        return undefined;
      } catch (err) {
        // Whatever happened, show what the provider now says rather than a transitional state forever.
        const fresh = await this.deps.provider.get(row.provider_id as string).catch(() => null);
        if (command === 'delete_server' && fresh === undefined) await this.markDestroyed(row.id);
        else await serversSql.update(this.deps.db, row.id, fresh ? this.fromProvider(fresh) : { status: 'unknown' });
        throw err;
      }
    });
    return { row, action };
  }

  power(owner: string, serverId: string, command: PowerCommand) {
    const provider = this.deps.provider;
    switch (command) {
      case 'start':
        return this.act(
          owner,
          serverId,
          'start_server',
          ['off'],
          'initializing',
          async () => {},
          async (row) => {
            await provider.powerOn(row.provider_id as string);
            return undefined;
          },
        );
      case 'stop':
        return this.act(
          owner,
          serverId,
          'stop_server',
          ['running'],
          'stopping',
          async () => {},
          async (row) => {
            await provider.shutdown(row.provider_id as string);
            return undefined;
          },
        );
      case 'reboot':
        return this.act(
          owner,
          serverId,
          'reboot_server',
          ['running'],
          'initializing',
          async () => {},
          async (row) => {
            await provider.reboot(row.provider_id as string);
            return undefined;
          },
        );
    }
  }

  /**
   * New type: stops the server first if it runs, changes the type (the disk grows only with
   * `upgrade_disk`, and never shrinks), then starts it again if it was running. A larger type reserves
   * the difference in deposits from the available balance.
   */
  resize(owner: string, serverId: string, input: { type: string; upgrade_disk?: boolean | undefined }) {
    const type = this.typeOf(input.type);
    this.checkOffer({ type: input.type });
    const upgradeDisk = input.upgrade_disk ?? false;
    let wasRunning = false;
    return this.act(
      owner,
      serverId,
      'resize_server',
      ['running', 'off'],
      'migrating',
      async (trx, row) => {
        if (row.type === type.slug) throw conflict(`the server is already ${type.slug}`);
        if (type.diskGb < row.disk_gb) {
          throw new AppError(
            'invalid_request',
            `disks never shrink: this server has ${row.disk_gb} GB and ${type.slug} only ${type.diskGb} GB`,
            422,
            { field: 'body.type' },
          );
        }
        wasRunning = row.status === 'running';
        const current = this.deps.catalog.types[row.type];
        const extra = current ? type.deposit - current.deposit : 0n;
        if (extra > 0n) {
          const after = await ledgerSql.move(trx, row.owner, -extra, extra);
          if (!after) {
            const balance = await ledgerSql.balance(trx, row.owner);
            throw unprocessable(
              'insufficient_deposit',
              `resizing to ${type.slug} reserves ${formatUsdc(extra)} USDC more deposit; your available spawn balance is ${formatUsdc(balance.available)} USDC`,
              { required: formatUsdc(extra), available: formatUsdc(balance.available) },
            );
          }
          await ledgerSql.record(trx, { owner: row.owner, serverId: row.id, kind: 'topup', amount: extra, after });
          await serversSql.update(trx, row.id, { deposit_remaining: row.deposit_remaining + extra });
        }
      },
      async (row) => {
        const id = row.provider_id as string;
        if (wasRunning) {
          await this.deps.provider.shutdown(id);
          await serversSql.update(this.deps.db, row.id, { status: 'migrating' });
        }
        await this.deps.provider.changeType(id, type, upgradeDisk);
        const patch: Partial<ServerRow> = {
          type: type.slug,
          cores: type.cores,
          memory_gb: type.memoryGb,
          burn_per_day: type.burnPerDay,
          disk_gb: upgradeDisk ? Math.max(row.disk_gb, type.diskGb) : row.disk_gb,
        };
        await serversSql.update(this.deps.db, row.id, patch);
        if (wasRunning) await this.deps.provider.powerOn(id);
        return patch;
      },
    );
  }

  /** Reinstalls from `image`: the disk is wiped, the server's SSH keys are applied again and user_data re-run. */
  rebuild(owner: string, serverId: string, input: { image: string }) {
    this.checkOffer({ image: input.image });
    return this.act(
      owner,
      serverId,
      'rebuild_server',
      ['running', 'off'],
      'rebuilding',
      async () => {},
      async (row) => {
        const keys = (await serversSql.keys(this.deps.db, row.id)).map((k) => ({
          id: k.key_id,
          name: k.name,
          publicKey: k.public_key,
          md5: k.md5,
        }));
        const userData = row.user_data_sealed
          ? this.deps.userDataBox.openText(row.user_data_sealed, row.id)
          : undefined;
        await this.deps.provider.rebuild(row.provider_id as string, input.image, keys, userData);
        return { image: input.image };
      },
    );
  }

  /** Destroys on the provider; when done, the row is destroyed and the unused deposit refunded. */
  destroy(owner: string | null, serverId: string) {
    return this.act(
      owner,
      serverId,
      'delete_server',
      ['running', 'off', 'unknown', 'initializing', 'stopping', 'migrating', 'rebuilding'],
      'destroying',
      async () => {},
      async (row) => {
        await this.deps.provider.delete(row.provider_id as string);
        await this.markDestroyed(row.id);
        return undefined;
      },
    );
  }

  async action(owner: string, id: string) {
    const row = await actionsSql.get(this.deps.db, id);
    if (!row) throw notFound('action');
    if (row.owner !== owner) throw forbidden('this action belongs to another wallet');
    let secret: string | undefined;
    if (row.secret_sealed && row.status === 'success') {
      // Handed out once: erased as it is read.
      const taken = await this.deps.db
        .updateTable('actions')
        .set({ secret_sealed: null })
        .where('id', '=', id)
        .where('secret_sealed', 'is not', null)
        .returning('secret_sealed')
        .executeTakeFirst();
      if (taken) secret = this.deps.userDataBox.openText(row.secret_sealed, row.id);
    }
    return { row, secret };
  }

  /**
   * A server changed state by itself (the provider told us): unless an action is running on it (which will
   * record the outcome), take the provider's view now rather than at the next reconciliation.
   */
  async sync(providerId: string): Promise<void> {
    const row = await this.deps.db
      .selectFrom('servers')
      .selectAll()
      .where('provider', '=', this.deps.provider.name)
      .where('provider_id', '=', providerId)
      .where('status', '<>', 'destroyed')
      .executeTakeFirst();
    if (!row || (await actionsSql.running(this.deps.db, row.id))) return;
    const fresh = await this.deps.provider.get(providerId);
    if (fresh) await serversSql.update(this.deps.db, row.id, this.fromProvider(fresh));
  }

  /** Re-reads one server from the provider (used by reconciliation). */
  async refresh(serverId: string, server: ProviderServer): Promise<void> {
    await serversSql.update(this.deps.db, serverId, this.fromProvider(server));
  }

  /** A server the provider no longer has: destroyed, and its deposit refunded. */
  async lost(serverId: string): Promise<void> {
    await this.markDestroyed(serverId);
  }

  /** The server is destroyed for an unpaid deposit (sweeper). */
  autoDestroy(serverId: string) {
    return this.destroy(null, serverId);
  }
}

export { TRANSITIONAL };
