import { type Selectable, sql } from '@agentstack/db';
import type { Executor, PlatformDB, ReservationState } from '../db.js';

export type ReservationRow = Selectable<PlatformDB['llm_reservations']>;

/** The LLM proxy's SQL: holds, rate-limit windows. Construct it on a transaction to commit calls together. */
export class ProxyStore {
  constructor(readonly db: Executor) {}

  /** The tenant's balance, locking its credits row until the transaction ends (holds of one tenant queue here). */
  async lockBalance(tenantId: string): Promise<bigint | undefined> {
    const row = await this.db
      .selectFrom('credits')
      .select('balance_micros')
      .where('tenant_id', '=', tenantId)
      .forUpdate()
      .executeTakeFirst();
    return row?.balance_micros;
  }

  async insertReservation(r: {
    id: string;
    tenantId: string;
    model: string;
    amountMicros: bigint;
    maxOutputTokens: number;
    inputTokensEstimate: number;
    requestId: string | null;
    ttlMs: number;
  }): Promise<ReservationRow> {
    return this.db
      .insertInto('llm_reservations')
      .values({
        id: r.id,
        tenant_id: r.tenantId,
        model: r.model,
        amount_micros: r.amountMicros,
        max_output_tokens: r.maxOutputTokens,
        input_tokens_estimate: r.inputTokensEstimate,
        request_id: r.requestId,
        expires_at: sql<Date>`now() + ${`${r.ttlMs} milliseconds`}::interval`,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /**
   * Closes an open or expired hold as `state` in one statement (locking it), and returns the state it had:
   * `open` (its release is still to be posted), `expired` (a sweeper already released it), or undefined when
   * it was already settled or released (or does not exist).
   */
  async closeLiveReservation(
    id: string,
    state: Exclude<ReservationState, 'open'>,
  ): Promise<{ previous: 'open' | 'expired'; tenantId: string; amountMicros: bigint } | undefined> {
    const result = await sql<{ previous: 'open' | 'expired'; tenant_id: string; amount_micros: string }>`
      with old as (
        select id, state, tenant_id, amount_micros from llm_reservations
        where id = ${id} and state in ('open', 'expired') for update
      )
      update llm_reservations r set state = ${state}, closed_at = now()
      from old where r.id = old.id
      returning old.state as previous, old.tenant_id, old.amount_micros
    `.execute(this.db);
    const row = result.rows[0];
    return row
      ? { previous: row.previous, tenantId: row.tenant_id, amountMicros: BigInt(row.amount_micros) }
      : undefined;
  }

  async closeReservation(id: string, state: Exclude<ReservationState, 'open'>): Promise<void> {
    await this.db
      .updateTable('llm_reservations')
      .set({ state, closed_at: sql<Date>`now()` })
      .where('id', '=', id)
      .execute();
  }

  /** Pushes the expiry of open holds this process is still serving. */
  async renewReservations(ids: string[], ttlMs: number): Promise<number> {
    if (ids.length === 0) return 0;
    const result = await this.db
      .updateTable('llm_reservations')
      .set({ expires_at: sql<Date>`now() + ${`${ttlMs} milliseconds`}::interval` })
      .where('id', 'in', ids)
      .where('state', '=', 'open')
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /** Open holds past their expiry, locked; rows another sweeper holds are skipped, not waited for. */
  claimExpiredReservations(limit: number): Promise<ReservationRow[]> {
    return this.db
      .selectFrom('llm_reservations')
      .selectAll()
      .where('state', '=', 'open')
      .where('expires_at', '<', sql<Date>`now()`)
      .orderBy('expires_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  }

  /**
   * Counts one request of the tenant in the current minute if the sliding-window estimate allows it, in one
   * statement (so replicas never both take the last slot): estimate = previous minute × (1 − elapsed fraction)
   * + this minute + 1. Time is the database's, so replicas agree on windows whatever their clocks say.
   */
  async hitRateLimit(
    tenantId: string,
    limit: number,
  ): Promise<{ allowed: boolean; current: number; previous: number; elapsed: number }> {
    const result = await sql<{ counted: number | null; current: number | null; previous: number; elapsed: number }>`
      with t as (
        select date_trunc('minute', now()) as cur,
               extract(epoch from (now() - date_trunc('minute', now()))) / 60.0 as elapsed
      ),
      p as (
        select coalesce((select requests from llm_rate_windows w, t
                         where w.tenant_id = ${tenantId} and w.window_start = t.cur - interval '1 minute'), 0) as n
      ),
      ins as (
        insert into llm_rate_windows as w (tenant_id, window_start, requests)
        select ${tenantId}, t.cur, 1 from t, p where 1 + p.n * (1 - t.elapsed) <= ${limit}
        on conflict (tenant_id, window_start) do update set requests = w.requests + 1
          where w.requests + 1 + (select p.n * (1 - t.elapsed) from p, t) <= ${limit}
        returning requests
      )
      select (select requests from ins)::int as counted,
             (select requests from llm_rate_windows w, t where w.tenant_id = ${tenantId} and w.window_start = t.cur)::int
               as current,
             (select n from p)::int as previous,
             (select elapsed from t)::float8 as elapsed
    `.execute(this.db);
    const row = result.rows[0]!;
    const allowed = row.counted !== null;
    return {
      allowed,
      current: allowed ? Number(row.counted) : Number(row.current ?? 0),
      previous: Number(row.previous),
      elapsed: Number(row.elapsed),
    };
  }

  async pruneRateWindows(): Promise<number> {
    const result = await this.db
      .deleteFrom('llm_rate_windows')
      .where('window_start', '<', sql<Date>`now() - interval '5 minutes'`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async conversationExists(tenantId: string, id: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('conversations')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row !== undefined;
  }
}
