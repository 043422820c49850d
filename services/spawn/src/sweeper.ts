import { type Clock, formatUsdc, newId, type SecretBox, utcDay } from '@agentstack/core';
import { type Kysely, withTransaction } from '@agentstack/db';
import { backoffDelay } from '@agentstack/webhooks';
import type { Catalog } from './catalog.js';
import type { Servers } from './servers.js';
import { deliveriesSql, ledgerSql, type ServerRow, type SpawnDB, serversSql, type Transaction } from './store.js';
import { newWebhookEventId, type WebhookEvent, type WebhookSender } from './webhooks.js';

export interface SweeperDeps {
  db: Kysely<SpawnDB>;
  catalog: Catalog;
  clock: Clock;
  servers: Servers;
  webhookBox: SecretBox;
  sender: WebhookSender;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export interface SweepReport {
  charged: number;
  toppedUp: number;
  warned: number;
  scheduled: number;
  rescued: number;
  destroyed: number;
  delivered: number;
}

const minOf = (a: bigint, b: bigint) => (a < b ? a : b);

/** Webhook retries: after 30 s, 1 min, 2 min, … up to 8 attempts (about two hours). */
const MAX_ATTEMPTS = 8;
const retryDelayMs = (attempt: number) => backoffDelay(attempt, { baseMs: 30_000, maxMs: Infinity, jitter: 0 });

/**
 * The daily burn and what follows from it. Each pass, for every live server not yet charged today:
 * top its deposit up from the owner's available balance when fewer than `warnDays` of burn would be left,
 * charge the day, warn below `warnDays` of burn (webhook, once a day), and when the deposit is empty
 * schedule the server's destruction `graceHours` later with a final warning. Servers past that deadline
 * are destroyed unless funds arrived. Rows are claimed with `FOR UPDATE SKIP LOCKED`, and a burn is a
 * ledger row unique per server and day, so any number of replicas and passes charge each day once.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepReport> | undefined;

  constructor(private readonly deps: SweeperDeps) {}

  start(intervalMs: number): void {
    const tick = () => {
      void this.sweep().catch((err) => this.deps.log?.warn({ err }, 'sweep failed'));
    };
    this.timer ??= setInterval(tick, intervalMs);
    this.timer.unref();
    tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One pass (a pass already running in this process is joined rather than doubled). */
  sweep(): Promise<SweepReport> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<SweepReport> {
    const report: SweepReport = {
      charged: 0,
      toppedUp: 0,
      warned: 0,
      scheduled: 0,
      rescued: 0,
      destroyed: 0,
      delivered: 0,
    };
    const now = this.deps.clock.now();
    const day = utcDay(now);
    for (;;) {
      const done = await withTransaction(this.deps.db, async (trx) => {
        const due = await serversSql.dueForBurn(trx, day, 50);
        for (const row of due) await this.chargeDay(trx, row, day, now, report);
        return due.length < 50;
      });
      if (done) break;
    }
    await this.rescue(undefined, report);
    await this.destroyOverdue(now, report);
    report.delivered = await this.deliver();
    if (report.charged + report.scheduled + report.destroyed > 0) this.deps.log?.info({ ...report }, 'sweep');
    return report;
  }

  private async chargeDay(trx: Transaction<SpawnDB>, row: ServerRow, day: string, now: Date, report: SweepReport) {
    const { warnDays } = this.deps.catalog;
    const burn = row.burn_per_day;
    // The row is locked; a burn row for today means this day was charged (the unique index backs this up).
    const charged = await trx
      .selectFrom('ledger')
      .select('id')
      .where('kind', '=', 'burn')
      .where('server_id', '=', row.id)
      .where('day', '=', day)
      .executeTakeFirst();
    if (charged) {
      await serversSql.update(trx, row.id, { last_burn_day: day });
      return;
    }
    const target = this.deps.catalog.types[row.type]?.deposit ?? burn * BigInt(warnDays + 1);
    let remaining = row.deposit_remaining;
    if (remaining - burn < burn * BigInt(warnDays)) {
      remaining += await this.topUp(trx, row, target + burn - remaining);
      if (remaining > row.deposit_remaining) report.toppedUp += 1;
    }
    const charge = minOf(remaining, burn);
    if (charge > 0n) {
      const after = await ledgerSql.move(trx, row.owner, 0n, -charge);
      if (!after) throw new Error(`burn of ${row.id} would make the reserved balance negative`);
      await ledgerSql.record(trx, { owner: row.owner, serverId: row.id, kind: 'burn', amount: charge, after, day });
      remaining -= charge;
      report.charged += 1;
    }
    const patch: Partial<ServerRow> = { deposit_remaining: remaining, last_burn_day: day };
    if (remaining === 0n) {
      // Already scheduled: the final warning went out; nothing more to say until it happens.
      if (row.auto_destroy_at) {
        await serversSql.update(trx, row.id, patch);
        return;
      }
      const at = new Date(now.getTime() + this.deps.catalog.graceHours * 3_600_000);
      patch.auto_destroy_at = at;
      report.scheduled += 1;
      await this.notify(trx, row, 'server.auto_destroy_scheduled', `auto_destroy:${row.id}:${at.toISOString()}`, {
        deposit_remaining: formatUsdc(0n),
        auto_destroy_at: at.toISOString(),
        message: `the deposit of ${row.name} is used up; it will be destroyed at ${at.toISOString()} unless you add funds (POST /v1/balance/deposit)`,
      });
    } else if (remaining < burn * BigInt(warnDays)) {
      report.warned += 1;
      await this.notify(trx, row, 'server.low_balance', `low_balance:${row.id}:${day}`, {
        deposit_remaining: formatUsdc(remaining),
        burn_per_day: formatUsdc(burn),
        days_left: Number(remaining / burn),
        message: `${row.name} has ${formatUsdc(remaining)} USDC of deposit left, less than ${warnDays} days of burn; add funds with POST /v1/balance/deposit`,
      });
    }
    await serversSql.update(trx, row.id, patch);
  }

  /** Moves up to `wanted` from the owner's available balance into the server's deposit; returns how much. */
  private async topUp(trx: Transaction<SpawnDB>, row: ServerRow, wanted: bigint): Promise<bigint> {
    if (wanted <= 0n) return 0n;
    const { available } = await ledgerSql.balance(trx, row.owner);
    const amount = minOf(available, wanted);
    if (amount <= 0n) return 0n;
    const after = await ledgerSql.move(trx, row.owner, -amount, amount);
    if (!after) return 0n;
    await ledgerSql.record(trx, { owner: row.owner, serverId: row.id, kind: 'topup', amount, after });
    return amount;
  }

  /**
   * Servers scheduled for destruction whose owner has funds again: their deposits are topped up to a day's
   * burn at least and the schedule is cancelled. Run every pass and right after a deposit.
   */
  async rescue(owner?: string, report?: SweepReport): Promise<number> {
    return withTransaction(this.deps.db, async (trx) => {
      let query = trx
        .selectFrom('servers')
        .selectAll()
        .where('status', 'not in', ['destroyed', 'destroying'])
        .where('auto_destroy_at', 'is not', null)
        .forUpdate()
        .skipLocked();
      if (owner) query = query.where('owner', '=', owner);
      let rescued = 0;
      for (const row of (await query.execute()) as ServerRow[]) {
        const target = this.deps.catalog.types[row.type]?.deposit ?? row.burn_per_day;
        const added = await this.topUp(trx, row, target - row.deposit_remaining);
        const remaining = row.deposit_remaining + added;
        if (remaining >= row.burn_per_day) {
          await serversSql.update(trx, row.id, { deposit_remaining: remaining, auto_destroy_at: null });
          rescued += 1;
        } else if (added > 0n) {
          await serversSql.update(trx, row.id, { deposit_remaining: remaining });
        }
      }
      if (report) report.rescued += rescued;
      return rescued;
    });
  }

  private async destroyOverdue(now: Date, report: SweepReport): Promise<void> {
    const overdue = await withTransaction(this.deps.db, async (trx) => {
      const rows = await serversSql.dueForAutoDestroy(trx, now, 50);
      for (const row of rows) {
        await this.notify(trx, row, 'server.auto_destroyed', `auto_destroyed:${row.id}`, {
          message: `${row.name} was destroyed: its deposit was used up and no funds arrived within ${this.deps.catalog.graceHours} h`,
        });
      }
      return rows;
    });
    for (const row of overdue) {
      try {
        await this.deps.servers.autoDestroy(row.id);
        report.destroyed += 1;
      } catch (err) {
        this.deps.log?.warn({ err, server: row.id }, 'auto-destroy could not start');
      }
    }
  }

  /** Queues a warning for the server's webhook (once per dedupe key); servers without one are skipped. */
  private async notify(
    trx: Transaction<SpawnDB>,
    row: ServerRow,
    type: WebhookEvent['type'],
    dedupeKey: string,
    data: Record<string, unknown>,
  ): Promise<void> {
    if (!row.webhook_url || !row.webhook_secret_sealed) return;
    const secret = this.deps.webhookBox.openText(row.webhook_secret_sealed, row.id);
    const event: WebhookEvent = {
      id: newWebhookEventId(),
      type,
      created_at: this.deps.clock.now().toISOString(),
      data: { server_id: row.id, server_name: row.name, wallet: row.owner, ...data },
    };
    await deliveriesSql.enqueue(trx, {
      id: newId('whd'),
      owner: row.owner,
      server_id: row.id,
      event: type,
      dedupe_key: dedupeKey,
      url: row.webhook_url,
      // Sealed again under the delivery's own id: the delivery outlives nothing it should not.
      secret_sealed: this.deps.webhookBox.seal(secret, `delivery:${dedupeKey}`),
      payload: event,
    });
  }

  /** Sends due deliveries (claimed with SKIP LOCKED), retrying failures with backoff. */
  async deliver(): Promise<number> {
    let delivered = 0;
    const now = this.deps.clock.now();
    const due = await withTransaction(this.deps.db, async (trx) => {
      const rows = await deliveriesSql.due(trx, now, 20);
      // Claimed: push the next attempt out while we send, so another replica does not send it too.
      for (const row of rows) {
        await trx
          .updateTable('webhook_deliveries')
          .set({ next_attempt_at: new Date(now.getTime() + 60_000), attempts: row.attempts + 1 })
          .where('id', '=', row.id)
          .execute();
      }
      return rows;
    });
    for (const row of due) {
      const secret = this.deps.webhookBox.openText(row.secret_sealed, `delivery:${row.dedupe_key}`);
      const attempt = await this.deps.sender.send({ url: row.url, secret }, row.payload as WebhookEvent);
      const attempts = row.attempts + 1;
      if (attempt.ok) {
        delivered += 1;
        await this.deps.db
          .updateTable('webhook_deliveries')
          .set({ status: 'delivered', delivered_at: this.deps.clock.now(), last_error: null })
          .where('id', '=', row.id)
          .execute();
      } else {
        await this.deps.db
          .updateTable('webhook_deliveries')
          .set({
            status: attempts >= MAX_ATTEMPTS ? 'failed' : 'pending',
            next_attempt_at: new Date(this.deps.clock.now().getTime() + retryDelayMs(attempts)),
            last_error: (attempt.error ?? 'failed').slice(0, 500),
          })
          .where('id', '=', row.id)
          .execute();
      }
    }
    return delivered;
  }
}
