import { createLogger, waitFor } from '@agentstack/core';
import { sql } from '@agentstack/db';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import type { LLMock } from '@copilotkit/aimock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsDir, type PlatformDB } from '../../src/db.js';
import { priceCall } from '../../src/llm-proxy/billing.js';
import { Reservations } from '../../src/llm-proxy/reservations.js';
import { PlatformStore } from '../../src/store.js';
import { startAimock, startProxyTestbed, usageFor } from '../support/proxy.js';
import { insertTenant } from '../support/tenants.js';

let database: TestDatabase<PlatformDB>;
let store: PlatformStore;
const log = createLogger({ name: 'test', level: 'silent' });
const PRICE = { inputPerMillionMicros: 3_000_000n, outputPerMillionMicros: 15_000_000n, markupPct: 30 };

beforeAll(async () => {
  database = await createTestDatabase<PlatformDB>({ migrationsDir });
  store = new PlatformStore(database.db);
});
afterAll(async () => {
  await database?.drop();
});

async function tenant(credit: bigint): Promise<string> {
  return (await insertTenant(store, { credit })).tenantId;
}

const balance = async (tenantId: string) => (await store.findCredits(tenantId))!.balance_micros;
const kinds = async (tenantId: string) =>
  (await store.listLedger(tenantId, { limit: 1000 })).map((e) => e.kind).reverse();

function hold(reservations: Reservations, tenantId: string) {
  return reservations.hold({
    tenantId,
    model: 'test-model',
    requestId: null,
    price: PRICE,
    inputTokens: 100,
    requestedMaxTokens: 200,
    modelMaxOutputTokens: 4_096,
    minOutputTokens: 16,
  });
}

const usage = (tenantId: string) => ({
  tenantId,
  model: 'test-model',
  modelId: null,
  provider: 'openai',
  inputTokens: 50,
  outputTokens: 100,
  ...(({ costMicros, marginMicros }) => ({ costMicros, marginMicros }))(priceCall(PRICE, 50, 100)),
});

/** Waits until the database clock has passed every hold's expiry. */
const waitExpired = (ids: string[]) =>
  waitFor(
    async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from llm_reservations
        where id = any(${ids}) and expires_at < now()`.execute(database.db);
      return rows[0]!.n === ids.length;
    },
    { timeoutMs: 10_000, intervalMs: 25, what: 'the holds to expire' },
  );

describe('holds left by a crashed process are released by the sweeper', () => {
  it('two replicas sweeping at once release each expired hold exactly once', async () => {
    const tenantId = await tenant(1_000_000n);
    // "Replica A" makes the holds and then dies (never renews or settles them).
    const crashed = new Reservations({ db: database.db, ttlMs: 200, log });
    const holds = [];
    for (let i = 0; i < 20; i++) holds.push(await hold(crashed, tenantId));
    const each = priceCall(PRICE, 100, 200).chargeMicros;
    expect(holds.every((h) => h.ok && h.amountMicros === each)).toBe(true);
    expect(await balance(tenantId)).toBe(1_000_000n - 20n * each);

    const ids = holds.map((h) => (h.ok ? h.reservationId : ''));
    await waitExpired(ids);
    const b = new Reservations({ db: database.db, ttlMs: 200, log });
    const c = new Reservations({ db: database.db, ttlMs: 200, log });
    const swept = await Promise.all([b.sweepExpired(7), c.sweepExpired(7), b.sweepExpired(100), c.sweepExpired(100)]);
    expect(swept.reduce((a, n) => a + n, 0)).toBe(20);
    expect(await b.sweepExpired()).toBe(0);
    expect(await balance(tenantId)).toBe(1_000_000n);
    const states = await database.db.selectFrom('llm_reservations').select('state').where('id', 'in', ids).execute();
    expect(states.every((s) => s.state === 'expired')).toBe(true);
    expect((await kinds(tenantId)).filter((k) => k === 'reservation_release')).toHaveLength(20);

    // A call that finishes after its hold was swept is billed once; the hold is not released twice.
    const late = await b.settle(ids[0]!, usage(tenantId));
    expect(late.chargedMicros).toBe(priceCall(PRICE, 50, 100).chargeMicros);
    expect(await balance(tenantId)).toBe(1_000_000n - late.chargedMicros);
    expect((await kinds(tenantId)).filter((k) => k === 'reservation_release')).toHaveLength(20);
    await expect(b.settle(ids[0]!, usage(tenantId))).rejects.toThrow(/already settled/);
    await b.release(ids[0]!); // no-op
    expect(await balance(tenantId)).toBe(1_000_000n - late.chargedMicros);
  });

  it('holds that are renewed are not swept; when renewal stops they are', async () => {
    const tenantId = await tenant(1_000_000n);
    const reservations = new Reservations({ db: database.db, ttlMs: 1_000, log });
    const held = await hold(reservations, tenantId);
    if (!held.ok) throw new Error('hold refused');
    const until = Date.now() + 2_000;
    while (Date.now() < until) {
      expect(await reservations.renew([held.reservationId])).toBe(1);
      expect(await reservations.sweepExpired()).toBe(0);
      await new Promise((r) => setTimeout(r, 60));
    }
    await waitExpired([held.reservationId]);
    expect(await reservations.sweepExpired()).toBe(1);
    expect(await reservations.renew([held.reservationId])).toBe(0); // closed holds are not revived
    expect(await balance(tenantId)).toBe(1_000_000n);
  });

  it('a free model holds nothing and writes no ledger rows for the hold', async () => {
    const tenantId = await tenant(0n);
    const reservations = new Reservations({ db: database.db, ttlMs: 1_000, log });
    const held = await reservations.hold({
      tenantId,
      model: 'local-llama',
      requestId: null,
      price: { inputPerMillionMicros: 0n, outputPerMillionMicros: 0n, markupPct: 30 },
      inputTokens: 100,
      requestedMaxTokens: undefined,
      modelMaxOutputTokens: 2_048,
      minOutputTokens: 16,
    });
    expect(held).toMatchObject({ ok: true, amountMicros: 0n, maxTokens: 2_048 });
    if (!held.ok) return;
    await reservations.settle(held.reservationId, { ...usage(tenantId), costMicros: 0n, marginMicros: 0n });
    expect(await kinds(tenantId)).toEqual([]);
    const rows = await database.db.selectFrom('usage_logs').selectAll().where('tenant_id', '=', tenantId).execute();
    expect(rows).toHaveLength(1);
  });
});

describe('a long call in a live proxy keeps its hold', () => {
  let mock: LLMock;
  beforeAll(async () => {
    mock = await startAimock({ chunkSize: 2 });
    mock.on(
      { userMessage: 'long' },
      { content: 'A long answer that streams for longer than a hold lives.', usage: usageFor(20, 30) },
      { latency: 100 },
    );
  });
  afterAll(async () => {
    await mock?.stop();
  });

  it('is renewed while it streams, not swept, and billed once at the end', async () => {
    const tb = await startProxyTestbed({
      upstreamUrl: mock.url,
      database,
      env: { LLM_PROXY_RESERVATION_TTL_SECONDS: '1', LLM_PROXY_SWEEP_INTERVAL_SECONDS: '0.05' },
    });
    try {
      const { tenantId, apiKey } = await tb.tenant(1_000_000n);
      const started = Date.now();
      const stream = await tb
        .client(apiKey)
        .chat.completions.create({ model: 'test-openai', messages: [{ role: 'user', content: 'long' }], stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      expect(Date.now() - started).toBeGreaterThan(2_000); // two lifetimes of the hold
      expect(text).toBe('A long answer that streams for longer than a hold lives.');
      await waitFor(async () => (await tb.usageRows(tenantId)).length === 1, { what: 'the bill' });
      const ledger = await tb.ledger(tenantId);
      expect(ledger.map((e) => e.kind)).toEqual(['admin_grant', 'reservation', 'reservation_release', 'usage']);
      // Released by the settlement, not by a sweeper.
      expect(ledger[2]?.memo).toBe('Hold released: request billed');
      const [row] = await database.db
        .selectFrom('llm_reservations')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .execute();
      expect(row?.state).toBe('settled');
    } finally {
      await tb.stop();
    }
  });
});
