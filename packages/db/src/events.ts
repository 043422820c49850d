import { Redis } from 'ioredis';
import pg from 'pg';

export type EventHandler<T = unknown> = (payload: T, channel: string) => void | Promise<void>;

/**
 * Fan-out of small JSON events between processes (e.g. "deposit settled" → every API replica).
 * Delivery is at most once and only to subscribers connected at the time: events published while a
 * subscriber reconnects are lost, so keep the truth in the database and treat an event as "go and look".
 */
export interface EventBus {
  publish(channel: string, payload: unknown): Promise<void>;
  /** Resolves once listening; the returned function stops this handler. */
  subscribe<T = unknown>(channel: string, handler: EventHandler<T>): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

interface WarnLogger {
  warn(obj: object, msg?: string): void;
}

/** PostgreSQL's NOTIFY payload must be shorter than 8000 bytes; Redis keeps the same limit so backends swap freely. */
export const MAX_EVENT_BYTES = 7999;
/** Letters, digits and `_ . : -`, at most 63 bytes (a PostgreSQL identifier), not starting with a digit. */
const CHANNEL = /^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$/;

function checkChannel(channel: string): void {
  if (!CHANNEL.test(channel)) {
    throw new Error(
      `event channel ${JSON.stringify(channel)} is not allowed: use letters, digits and _ . : - (at most 63, not starting with a digit)`,
    );
  }
}

function encode(channel: string, payload: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    throw new Error(`event payload for ${channel} is not JSON-serialisable: ${(err as Error).message}`, { cause: err });
  }
  if (json === undefined) throw new Error(`event payload for ${channel} is not JSON-serialisable`);
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_EVENT_BYTES) {
    throw new Error(
      `event payload for ${channel} is ${bytes} bytes; the limit is ${MAX_EVENT_BYTES} — publish an id and read the rest from the database`,
    );
  }
  return json;
}

/**
 * The handler bookkeeping both backends share. `sync` brings the connection in line with the handler map,
 * one call at a time, so any interleaving of subscribe/unsubscribe ends listening to exactly the channels
 * that still have handlers.
 */
class Subscriptions {
  readonly handlers = new Map<string, Set<EventHandler>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly apply: (channel: string, listen: boolean) => Promise<void>,
    private readonly log: WarnLogger | undefined,
  ) {}

  async add(channel: string, handler: EventHandler): Promise<() => Promise<void>> {
    checkChannel(channel);
    const set = this.handlers.get(channel) ?? new Set();
    this.handlers.set(channel, set);
    set.add(handler);
    try {
      await this.sync(channel);
    } catch (err) {
      await this.remove(channel, handler).catch(() => {});
      throw err;
    }
    return () => this.remove(channel, handler);
  }

  private async remove(channel: string, handler: EventHandler): Promise<void> {
    const set = this.handlers.get(channel);
    if (!set?.delete(handler) || set.size > 0) return;
    this.handlers.delete(channel);
    await this.sync(channel);
  }

  private sync(channel: string): Promise<void> {
    const run = this.queue.then(() => this.apply(channel, this.handlers.has(channel)));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Whatever is queued, finished. */
  settled(): Promise<unknown> {
    return this.queue;
  }

  dispatch(channel: string, raw: string): void {
    const set = this.handlers.get(channel);
    if (!set) return;
    let payload: unknown;
    try {
      payload = JSON.parse(raw);
    } catch (err) {
      this.log?.warn({ err, channel }, 'event bus: dropped an event that is not JSON');
      return;
    }
    for (const handler of set) {
      // One failing handler must not stop the others or the connection.
      Promise.resolve()
        .then(() => handler(payload, channel))
        .catch((err) => this.log?.warn({ err, channel }, 'event handler failed'));
    }
  }
}

export interface PgEventBusOptions {
  /** Publishes through this pool; the listening connection is opened with the same settings. */
  pool?: pg.Pool;
  connectionString?: string;
  log?: WarnLogger;
  /** Called after the listening connection was lost and is back: events in between are gone, so resync here. */
  onReconnect?: () => void;
}

/** LISTEN/NOTIFY on one dedicated connection, reconnecting (and re-LISTENing) when it drops. */
export class PgEventBus implements EventBus {
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly clientConfig: pg.ClientConfig;
  private readonly subscriptions: Subscriptions;
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private closed = false;

  constructor(private readonly options: PgEventBusOptions) {
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
      this.clientConfig = { ...options.pool.options };
    } else if (options.connectionString) {
      this.pool = new pg.Pool({ connectionString: options.connectionString, max: 2 });
      this.pool.on('error', (err) => options.log?.warn({ err }, 'event bus: idle connection failed'));
      this.ownsPool = true;
      this.clientConfig = { connectionString: options.connectionString };
    } else {
      throw new Error('PgEventBus needs a pool or a connectionString');
    }
    this.subscriptions = new Subscriptions(async (channel, listen) => {
      // The reconnect re-LISTENs everything in the map, so a lost connection here needs no retry.
      const client = await this.listener();
      const sql = `${listen ? 'LISTEN' : 'UNLISTEN'} ${client.escapeIdentifier(channel)}`;
      await client.query(sql).catch((err) => {
        if (client === this.client) throw err;
      });
    }, options.log);
  }

  async publish(channel: string, payload: unknown): Promise<void> {
    checkChannel(channel);
    await this.pool.query('SELECT pg_notify($1, $2)', [channel, encode(channel, payload)]);
  }

  subscribe<T = unknown>(channel: string, handler: EventHandler<T>): Promise<() => Promise<void>> {
    if (this.closed) return Promise.reject(new Error('event bus is closed'));
    return this.subscriptions.add(channel, handler as EventHandler);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.subscriptions.settled();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
    if (this.ownsPool) await this.pool.end();
  }

  /** The listening connection, connected (with every channel LISTENed) on first use. */
  private listener(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<pg.Client> {
    if (this.closed) throw new Error('event bus is closed');
    const client = new pg.Client({ ...this.clientConfig, application_name: 'event-bus-listener' });
    client.on('notification', (msg) => this.subscriptions.dispatch(msg.channel, msg.payload ?? 'null'));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    await client.connect();
    for (const channel of this.subscriptions.handlers.keys()) {
      await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
    }
    if (this.closed) {
      await client.end();
      throw new Error('event bus is closed');
    }
    this.client = client;
    return client;
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.closed || client !== this.client) return;
    this.client = undefined;
    this.options.log?.warn({ err }, 'event bus: listening connection lost, reconnecting');
    client.end().catch(() => {});
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** attempt)));
      if (this.closed || this.client) return;
      try {
        await this.listener();
        this.options.onReconnect?.();
        return;
      } catch (err) {
        this.options.log?.warn({ err, attempt }, 'event bus: reconnect failed');
      }
    }
  }
}

export interface RedisEventBusOptions {
  url: string;
  log?: WarnLogger;
}

/** Redis pub/sub: one connection publishes, one subscribes (a subscribed Redis connection can do nothing else). */
export class RedisEventBus implements EventBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly subscriptions: Subscriptions;
  private closed = false;

  constructor({ url, log }: RedisEventBusOptions) {
    // ioredis reconnects by itself and re-subscribes the channels it was subscribed to.
    this.publisher = new Redis(url, { connectionName: 'event-bus-publisher' });
    this.subscriber = new Redis(url, { connectionName: 'event-bus-subscriber' });
    for (const connection of [this.publisher, this.subscriber]) {
      connection.on('error', (err) => log?.warn({ err }, 'event bus: redis connection error'));
    }
    this.subscriber.on('message', (channel: string, message: string) => this.subscriptions.dispatch(channel, message));
    this.subscriptions = new Subscriptions(async (channel, listen) => {
      if (listen) await this.subscriber.subscribe(channel);
      else await this.subscriber.unsubscribe(channel);
    }, log);
  }

  async publish(channel: string, payload: unknown): Promise<void> {
    checkChannel(channel);
    await this.publisher.publish(channel, encode(channel, payload));
  }

  subscribe<T = unknown>(channel: string, handler: EventHandler<T>): Promise<() => Promise<void>> {
    if (this.closed) return Promise.reject(new Error('event bus is closed'));
    return this.subscriptions.add(channel, handler as EventHandler);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.subscriptions.settled();
    await Promise.all(
      [this.publisher, this.subscriber].map((connection) => connection.quit().catch(() => connection.disconnect())),
    );
  }
}

export interface EventBusOptions {
  /** `REDIS_URL`: when set, Redis pub/sub (the production fan-out); otherwise PostgreSQL LISTEN/NOTIFY. */
  redisUrl?: string;
  pool?: pg.Pool;
  connectionString?: string;
  log?: WarnLogger;
}

export function createEventBus({ redisUrl, pool, connectionString, log }: EventBusOptions): EventBus {
  if (redisUrl) return new RedisEventBus({ url: redisUrl, log });
  return new PgEventBus({ pool, connectionString, log });
}
