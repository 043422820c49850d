import { waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBus, type EventBus, MAX_EVENT_BYTES, PgEventBus, RedisEventBus } from '../src/events.js';
import { createTestDatabase, type TestDatabase, testRedisUrl } from '../src/testing.js';

let database: TestDatabase<unknown>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.drop());

/** Collects what a subscriber receives. */
function inbox() {
  const received: unknown[] = [];
  return { received, handler: (payload: unknown) => void received.push(payload) };
}

const backends: [string, () => Promise<EventBus>][] = [
  ['PostgreSQL LISTEN/NOTIFY', async () => new PgEventBus({ pool: database.pool })],
  ['Redis pub/sub', async () => new RedisEventBus({ url: await testRedisUrl() })],
];

describe.each(backends)('%s', (_name, makeBus) => {
  let bus: EventBus;
  beforeAll(async () => {
    bus = await makeBus();
  });
  afterAll(() => bus.close());

  it('delivers a payload to every subscriber, unchanged', async () => {
    const a = inbox();
    const b = inbox();
    const stopA = await bus.subscribe('deposits', a.handler);
    const stopB = await bus.subscribe('deposits', b.handler);
    const payload = { id: 'dep_1', amountAtomic: '18446744073709551616', nested: { ok: true, list: [1, null, 'é'] } };
    await bus.publish('deposits', payload);
    await waitFor(() => a.received.length === 1 && b.received.length === 1, { what: 'both subscribers' });
    expect(a.received).toEqual([payload]);
    expect(b.received).toEqual([payload]);
    await stopA();
    await stopB();
  });

  it('stops delivering after unsubscribe, to that handler only', async () => {
    const kept = inbox();
    const dropped = inbox();
    const stopKept = await bus.subscribe('tenant:ten_1.events', kept.handler);
    const stopDropped = await bus.subscribe('tenant:ten_1.events', dropped.handler);
    await stopDropped();
    await stopDropped(); // twice is harmless
    await bus.publish('tenant:ten_1.events', 1);
    await bus.publish('tenant:ten_1.events', 2);
    await waitFor(() => kept.received.length === 2, { what: 'kept subscriber' });
    expect(dropped.received).toEqual([]);
    await stopKept();

    // Nobody left on the channel: publishing still works, and a new subscriber only sees new events.
    await bus.publish('tenant:ten_1.events', 3);
    const late = inbox();
    const stopLate = await bus.subscribe('tenant:ten_1.events', late.handler);
    await bus.publish('tenant:ten_1.events', 4);
    await waitFor(() => late.received.length === 1, { what: 'late subscriber' });
    expect(late.received).toEqual([4]);
    expect(kept.received).toEqual([1, 2]);
    await stopLate();
  });

  it('keeps channels apart and survives a failing handler', async () => {
    const other = inbox();
    const good = inbox();
    const stops = await Promise.all([
      bus.subscribe('chan_a', () => {
        throw new Error('handler bug');
      }),
      bus.subscribe('chan_a', good.handler),
      bus.subscribe('chan_b', other.handler),
    ]);
    await bus.publish('chan_a', 'x');
    await bus.publish('chan_a', 'y');
    await waitFor(() => good.received.length === 2, { what: 'good handler' });
    expect(other.received).toEqual([]);
    for (const stop of stops) await stop();
  });

  it('refuses oversize payloads, bad channels and non-JSON values clearly', async () => {
    const big = { blob: 'x'.repeat(MAX_EVENT_BYTES) };
    await expect(bus.publish('deposits', big)).rejects.toThrow(
      /event payload for deposits is 80\d\d bytes; the limit is 7999/,
    );
    await bus.publish('deposits', { blob: 'x'.repeat(MAX_EVENT_BYTES - 11) }); // exactly at the limit
    await expect(bus.publish('drop table; --', 1)).rejects.toThrow('event channel "drop table; --" is not allowed');
    await expect(bus.subscribe('"quoted"', () => {})).rejects.toThrow('is not allowed');
    await expect(bus.publish('deposits', { amount: 1n })).rejects.toThrow('not JSON-serialisable');
  });
});

describe('PgEventBus', () => {
  it('reconnects and listens again when its connection is cut', async () => {
    let reconnected = 0;
    const bus = new PgEventBus({ connectionString: database.url, onReconnect: () => reconnected++ });
    const got = inbox();
    await bus.subscribe('after_cut', got.handler);
    const { rowCount } = await database.pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'event-bus-listener' AND datname = current_database()",
    );
    expect(rowCount).toBe(1);
    await waitFor(() => reconnected === 1, { what: 'reconnect' });
    await bus.publish('after_cut', 'hello again');
    await waitFor(() => got.received.length === 1, { what: 'event after reconnect' });
    expect(got.received).toEqual(['hello again']);
    await bus.close();
  });
});

describe('createEventBus', () => {
  it('picks Redis when a REDIS_URL is given, PostgreSQL otherwise', async () => {
    const redis = createEventBus({ redisUrl: await testRedisUrl(), pool: database.pool });
    const postgres = createEventBus({ redisUrl: '', pool: database.pool });
    expect(redis).toBeInstanceOf(RedisEventBus);
    expect(postgres).toBeInstanceOf(PgEventBus);
    await Promise.all([redis.close(), postgres.close()]);
  });
});
