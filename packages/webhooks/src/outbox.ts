import { fileURLToPath } from 'node:url';
import { type Clock, decodeCursor, newId, type Page, type SecretBox, systemClock, toPage } from '@agentstack/core';
import { z } from 'zod';
import { type BackoffOptions, backoffDelay, createWebhookFetch, sendWebhook } from './delivery.js';

/** Apply with `migrate({ dir: webhooksMigrationsDir, table: 'webhooks_schema_migrations' })`. */
export const webhooksMigrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

/** Anything with pg's `query`: a pool, a client inside a transaction, or an adapter over another driver. */
export interface Queryable {
  // biome-ignore lint/suspicious/noExplicitAny: rows are read field by field.
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

interface Log {
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

export interface WebhookTarget {
  id: string;
  owner: string;
  url: string;
  /** null: every event type. */
  events: string[] | null;
  status: 'active' | 'disabled' | 'deleted';
  consecutiveFailures: number;
  disabledReason: string | null;
  disabledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface WebhookEvent<T = unknown> {
  id: string;
  type: string;
  createdAt: string;
  data: T;
}

export interface DeliveryAttempt {
  attempt: number;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
}

export interface Delivery {
  id: string;
  targetId: string;
  url: string;
  eventId: string;
  eventType: string;
  status: 'pending' | 'delivered' | 'failed' | 'cancelled';
  attempts: number;
  nextAttemptAt: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  log: DeliveryAttempt[];
}

export interface WebhookOutboxOptions {
  db: Queryable;
  /** Seals target secrets at rest (recommended); without it they are stored as given. */
  secretBox?: SecretBox;
  /** Default: an SSRF-safe fetch (public addresses only, 64 KiB response cap). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  clock?: Clock;
  log?: Log;
  /** Attempts per delivery before it is marked failed (default 12: about 2 h of retries). */
  maxAttempts?: number;
  /** Default: 2 s doubling per attempt, at most 1 h between attempts, ±20 % jitter. */
  backoff?: Partial<BackoffOptions>;
  /** A target is disabled after this many consecutive failed attempts (default 15), with the reason recorded. */
  disableAfter?: number;
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  /** How long a worker holds a delivery it is sending (default 60 s). */
  leaseMs?: number;
  /** Deliveries sent at once by one worker (default 4). */
  concurrency?: number;
  userAgent?: string;
}

const targetRow = (row: Record<string, unknown>): WebhookTarget => ({
  id: row.id as string,
  owner: row.owner as string,
  url: row.url as string,
  events: (row.events as string[] | null) ?? null,
  status: row.status as WebhookTarget['status'],
  consecutiveFailures: Number(row.consecutive_failures),
  disabledReason: (row.disabled_reason as string | null) ?? null,
  disabledAt: (row.disabled_at as Date | null) ?? null,
  createdAt: row.created_at as Date,
  updatedAt: row.updated_at as Date,
});

const BATCH = 20;
const EVENT_TYPE = /^[a-z][a-z0-9_.-]{0,99}$/;
const cursorShape = z.object({ t: z.string(), id: z.string() });

/** Only absolute http(s) URLs; where they may point is checked at delivery time by the SSRF-safe fetch. */
export function checkWebhookUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be an http(s) URL';
  if (parsed.username || parsed.password) return 'must not contain credentials';
  if (url.length > 2_000) return 'must be at most 2000 characters';
  return undefined;
}

/**
 * A transactional outbox for webhooks. `enqueue` writes deliveries in the caller's transaction (so an event
 * is sent if and only if the change that caused it commits); workers on any number of replicas claim due
 * deliveries with `FOR UPDATE SKIP LOCKED`, sign and send them, retry with exponential backoff, record every
 * attempt, and disable a target that keeps failing.
 */
export class WebhookOutbox {
  private readonly db: Queryable;
  private readonly clock: Clock;
  private readonly fetch: (input: string, init: RequestInit) => Promise<Response>;
  private readonly maxAttempts: number;
  private readonly backoff: BackoffOptions;
  private readonly disableAfter: number;
  private readonly timeoutMs: number;
  private readonly leaseMs: number;
  private readonly concurrency: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;

  constructor(private readonly options: WebhookOutboxOptions) {
    this.db = options.db;
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetch = options.fetch ?? createWebhookFetch({ timeoutMs: this.timeoutMs });
    this.maxAttempts = options.maxAttempts ?? 12;
    this.backoff = {
      baseMs: options.backoff?.baseMs ?? 2_000,
      maxMs: options.backoff?.maxMs ?? 3_600_000,
      jitter: options.backoff?.jitter ?? 0.2,
    };
    this.disableAfter = options.disableAfter ?? 15;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.concurrency = options.concurrency ?? 4;
  }

  private seal(id: string, secret: string): string {
    return this.options.secretBox ? this.options.secretBox.seal(secret, id) : secret;
  }

  private open(id: string, stored: string): string {
    return this.options.secretBox ? this.options.secretBox.openText(stored, id) : stored;
  }

  async createTarget(
    input: { owner: string; url: string; secret: string; events?: string[] | null },
    q: Queryable = this.db,
  ): Promise<WebhookTarget> {
    const problem = checkWebhookUrl(input.url);
    if (problem) throw new Error(`webhook url ${problem}`);
    if (input.secret.length < 16) throw new Error('webhook secret must be at least 16 characters');
    const id = newId('wht');
    const now = this.clock.now();
    const { rows } = await q.query(
      `INSERT INTO webhook_targets (id, owner, url, secret, events, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *`,
      [id, input.owner, input.url, this.seal(id, input.secret), input.events ?? null, now],
    );
    return targetRow(rows[0]);
  }

  async getTarget(id: string, q: Queryable = this.db): Promise<WebhookTarget | undefined> {
    const { rows } = await q.query('SELECT * FROM webhook_targets WHERE id = $1', [id]);
    return rows[0] ? targetRow(rows[0]) : undefined;
  }

  async listTargets(owner: string, q: Queryable = this.db): Promise<WebhookTarget[]> {
    const { rows } = await q.query(
      `SELECT * FROM webhook_targets WHERE owner = $1 AND status <> 'deleted' ORDER BY created_at, id`,
      [owner],
    );
    return rows.map(targetRow);
  }

  /** Re-enabling (`enabled: true`) clears the failure count and the disabled reason. */
  async updateTarget(
    id: string,
    change: { url?: string; secret?: string; events?: string[] | null; enabled?: boolean },
    q: Queryable = this.db,
  ): Promise<WebhookTarget | undefined> {
    if (change.url !== undefined) {
      const problem = checkWebhookUrl(change.url);
      if (problem) throw new Error(`webhook url ${problem}`);
    }
    if (change.secret !== undefined && change.secret.length < 16) {
      throw new Error('webhook secret must be at least 16 characters');
    }
    const sets: string[] = ['updated_at = $2'];
    const values: unknown[] = [id, this.clock.now()];
    const add = (sqlText: string, value: unknown) => {
      values.push(value);
      sets.push(sqlText.replace('?', `$${values.length}`));
    };
    if (change.url !== undefined) add('url = ?', change.url);
    if (change.secret !== undefined) add('secret = ?', this.seal(id, change.secret));
    if (change.events !== undefined) add('events = ?', change.events);
    if (change.enabled === true) {
      sets.push(`status = 'active'`, 'consecutive_failures = 0', 'disabled_reason = NULL', 'disabled_at = NULL');
    } else if (change.enabled === false) {
      add(`status = 'disabled', disabled_reason = ?, disabled_at = $2`, 'disabled by its owner');
    }
    const { rows } = await q.query(
      `UPDATE webhook_targets SET ${sets.join(', ')} WHERE id = $1 AND status <> 'deleted' RETURNING *`,
      values,
    );
    return rows[0] ? targetRow(rows[0]) : undefined;
  }

  /** Stops deliveries to the target (pending ones are cancelled); its log stays readable. */
  async deleteTarget(id: string, q: Queryable = this.db): Promise<void> {
    const now = this.clock.now();
    await q.query(`UPDATE webhook_targets SET status = 'deleted', updated_at = $2 WHERE id = $1`, [id, now]);
    await q.query(
      `UPDATE webhook_deliveries SET status = 'cancelled', finished_at = $2
       WHERE target_id = $1 AND status = 'pending'`,
      [id, now],
    );
  }

  /**
   * Queues one event for every active target of `owner` subscribed to its type (or for `targetIds`). Pass the
   * transaction that makes the change, so the event exists exactly when the change does.
   */
  async enqueue<T>(
    input: { owner?: string; targetIds?: string[]; type: string; data: T; eventId?: string },
    q: Queryable = this.db,
  ): Promise<{ event: WebhookEvent<T>; deliveryIds: string[] }> {
    if (!EVENT_TYPE.test(input.type)) throw new Error(`bad webhook event type ${JSON.stringify(input.type)}`);
    const now = this.clock.now();
    const event: WebhookEvent<T> = {
      id: input.eventId ?? newId('evt'),
      type: input.type,
      createdAt: now.toISOString(),
      data: input.data,
    };
    const payload = JSON.stringify(event);
    const { rows: targets } = await q.query(
      `SELECT id FROM webhook_targets
       WHERE status = 'active' AND (events IS NULL OR $3 = ANY(events))
         AND (($1::text IS NOT NULL AND owner = $1) OR ($2::text[] IS NOT NULL AND id = ANY($2)))`,
      [input.owner ?? null, input.targetIds ?? null, input.type],
    );
    const deliveryIds: string[] = [];
    for (const target of targets) {
      const id = newId('whd');
      const inserted = await q.query(
        `INSERT INTO webhook_deliveries (id, target_id, event_id, event_type, payload, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (target_id, event_id) DO NOTHING RETURNING id`,
        [id, target.id, event.id, event.type, payload, now],
      );
      if (inserted.rows.length > 0) deliveryIds.push(id);
    }
    if (deliveryIds.length > 0) this.wake();
    return { event, deliveryIds };
  }

  /** Claims and sends up to `limit` due deliveries; resolves with how many were attempted. */
  async deliverDue(limit = BATCH): Promise<number> {
    const now = this.clock.now();
    const { rows } = await this.db.query(
      `UPDATE webhook_deliveries d
       SET locked_until = $2, attempts = d.attempts + 1
       FROM webhook_targets t
       WHERE d.id IN (
         SELECT d2.id FROM webhook_deliveries d2 JOIN webhook_targets t2 ON t2.id = d2.target_id
         WHERE d2.status = 'pending' AND d2.next_attempt_at <= $1
           AND (d2.locked_until IS NULL OR d2.locked_until < $1) AND t2.status = 'active'
         ORDER BY d2.next_attempt_at
         LIMIT $3
         FOR UPDATE OF d2 SKIP LOCKED
       ) AND t.id = d.target_id
       RETURNING d.id, d.target_id, d.event_type, d.payload, d.attempts, t.url, t.secret`,
      [now, new Date(now.getTime() + this.leaseMs), limit],
    );
    let index = 0;
    await Promise.all(
      Array.from({ length: Math.min(this.concurrency, rows.length) }, async () => {
        while (index < rows.length) {
          const row = rows[index++];
          await this.attempt(row).catch((err) =>
            this.options.log?.warn({ err, delivery: row.id }, 'webhook attempt could not be recorded'),
          );
        }
      }),
    );
    return rows.length;
  }

  private async attempt(row: {
    id: string;
    target_id: string;
    event_type: string;
    payload: string;
    attempts: number;
    url: string;
    secret: string;
  }): Promise<void> {
    const started = this.clock.now();
    const t0 = performance.now();
    let result: { statusCode: number | null; error: string | null };
    try {
      result = await sendWebhook({
        url: row.url,
        secret: this.open(row.target_id, row.secret),
        body: row.payload,
        id: row.id,
        event: row.event_type,
        fetch: this.fetch,
        timeoutMs: this.timeoutMs,
        timestamp: Math.floor(started.getTime() / 1000),
        ...(this.options.userAgent !== undefined && { userAgent: this.options.userAgent }),
      });
    } catch (err) {
      // The secret could not be opened.
      result = { statusCode: null, error: ((err as Error).message || String(err)).slice(0, 500) };
    }
    const { statusCode, error } = result;
    const durationMs = Math.round(performance.now() - t0);
    await this.record(row, { started, durationMs, statusCode, error });
  }

  private async record(
    row: { id: string; target_id: string; attempts: number },
    result: { started: Date; durationMs: number; statusCode: number | null; error: string | null },
  ): Promise<void> {
    const now = this.clock.now();
    await this.db.query(
      `INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [row.id, row.attempts, result.started, result.durationMs, result.statusCode, result.error],
    );
    if (result.error === null) {
      await this.db.query(
        `UPDATE webhook_deliveries SET status = 'delivered', finished_at = $2, locked_until = NULL,
           last_status = $3, last_error = NULL WHERE id = $1`,
        [row.id, now, result.statusCode],
      );
      await this.db.query(
        'UPDATE webhook_targets SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0',
        [row.target_id],
      );
      return;
    }
    const exhausted = row.attempts >= this.maxAttempts;
    await this.db.query(
      `UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, finished_at = $4, locked_until = NULL,
         last_status = $5, last_error = $6 WHERE id = $1`,
      [
        row.id,
        exhausted ? 'failed' : 'pending',
        new Date(now.getTime() + backoffDelay(row.attempts, this.backoff)),
        exhausted ? now : null,
        result.statusCode,
        result.error,
      ],
    );
    // 410 Gone is the receiver saying "stop": disable at once. Otherwise after a run of failures.
    const { rows } = await this.db.query(
      `UPDATE webhook_targets SET consecutive_failures = consecutive_failures + 1,
         status = CASE WHEN consecutive_failures + 1 >= $2 OR $3 THEN 'disabled' ELSE status END,
         disabled_at = CASE WHEN consecutive_failures + 1 >= $2 OR $3 THEN $4 ELSE disabled_at END,
         disabled_reason = CASE WHEN consecutive_failures + 1 >= $2 OR $3 THEN $5 ELSE disabled_reason END,
         updated_at = $4
       WHERE id = $1 AND status = 'active' RETURNING status`,
      [
        row.target_id,
        this.disableAfter,
        result.statusCode === 410,
        now,
        result.statusCode === 410
          ? 'the receiver answered 410 Gone'
          : `${this.disableAfter} consecutive failed attempts; last: ${result.error}`,
      ],
    );
    if (rows[0]?.status === 'disabled') {
      this.options.log?.warn({ target: row.target_id, error: result.error }, 'webhook target disabled');
    }
  }

  /** The delivery log, newest first, with every attempt. */
  async deliveries(
    filter: { owner?: string; targetId?: string; status?: Delivery['status'] },
    { limit = 25, cursor }: { limit?: number; cursor?: string } = {},
    q: Queryable = this.db,
  ): Promise<Page<Delivery>> {
    const position = decodeCursor(cursor, cursorShape);
    const { rows } = await q.query(
      `SELECT d.*, t.url FROM webhook_deliveries d JOIN webhook_targets t ON t.id = d.target_id
       WHERE ($1::text IS NULL OR t.owner = $1) AND ($2::text IS NULL OR d.target_id = $2)
         AND ($3::text IS NULL OR d.status = $3)
         AND ($4::timestamptz IS NULL OR (d.created_at, d.id) < ($4::timestamptz, $5::text))
       ORDER BY d.created_at DESC, d.id DESC LIMIT $6`,
      [
        filter.owner ?? null,
        filter.targetId ?? null,
        filter.status ?? null,
        position?.t ?? null,
        position?.id ?? null,
        limit + 1,
      ],
    );
    const ids = rows.slice(0, limit).map((r) => r.id as string);
    const { rows: attempts } = ids.length
      ? await q.query('SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt', [ids])
      : { rows: [] };
    return toPage(
      rows,
      limit,
      (r): Delivery => ({
        id: r.id,
        targetId: r.target_id,
        url: r.url,
        eventId: r.event_id,
        eventType: r.event_type,
        status: r.status,
        attempts: Number(r.attempts),
        nextAttemptAt: r.status === 'pending' ? r.next_attempt_at : null,
        lastStatus: r.last_status ?? null,
        lastError: r.last_error ?? null,
        createdAt: r.created_at,
        finishedAt: r.finished_at ?? null,
        log: attempts
          .filter((a) => a.delivery_id === r.id)
          .map((a) => ({
            attempt: Number(a.attempt),
            startedAt: a.started_at,
            durationMs: Number(a.duration_ms),
            statusCode: a.status_code ?? null,
            error: a.error ?? null,
          })),
      }),
      (r) => ({ t: (r.created_at as Date).toISOString(), id: r.id }),
    );
  }

  /** Polls for due deliveries every `intervalMs`, and at once after an enqueue in this process. */
  start({ intervalMs = 1_000 }: { intervalMs?: number } = {}): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.intervalMs = intervalMs;
    this.schedule(0);
  }

  private intervalMs = 1_000;
  private again = false;

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        // Keep going while full batches come back.
        while (!this.stopped && (await this.deliverDue(BATCH)) >= BATCH) {}
      } catch (err) {
        this.options.log?.warn({ err }, 'webhook worker pass failed');
      }
    })();
    await this.running;
    this.running = undefined;
    const soon = this.again;
    this.again = false;
    this.schedule(soon ? 0 : this.intervalMs);
  }

  /** Runs the worker now instead of at its next tick (no-op when not started). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  /** Stops polling and waits for the pass in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
