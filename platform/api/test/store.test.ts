import { newId } from '@agentstack/core';
import { type Kysely, sql, withTransaction } from '@agentstack/db';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordUsage } from '../src/credits.js';
import { migrationsDir, type PlatformDB } from '../src/db.js';
import { priceWithMarkup, publicModel, SEED_MODELS, seedModels } from '../src/models.js';
import { PlatformStore } from '../src/store.js';
import { insertTenant } from './support/tenants.js';

let database: TestDatabase<PlatformDB>;
let db: Kysely<PlatformDB>;
let store: PlatformStore;

beforeAll(async () => {
  database = await createTestDatabase<PlatformDB>({ migrationsDir });
  db = database.db;
  store = new PlatformStore(db);
});
afterAll(async () => {
  await database?.drop();
});

/** A user with a tenant and an empty credits row, written directly. */
async function newTenant(): Promise<string> {
  return (await insertTenant(store)).tenantId;
}

const balance = async (tenantId: string) => (await store.findCredits(tenantId))!.balance_micros;
const ledger = (tenantId: string) => store.listLedger(tenantId, { limit: 1000 });
const pgError = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected the database to refuse');
    },
    (err: Error) => err.message,
  );

describe('credits can only move with a ledger row', () => {
  it('a ledger row moves the balance and records the balance after it', async () => {
    const tenantId = await newTenant();
    const first = await store.postLedgerEntry({
      tenantId,
      amountMicros: 10_000_000n,
      kind: 'free_credit',
      reference: 'signup',
    });
    const second = await store.postLedgerEntry({ tenantId, amountMicros: -1_234n, kind: 'usage', reference: 'usg_1' });
    expect(first.entry.balance_after_micros).toBe(10_000_000n);
    expect(second.entry.balance_after_micros).toBe(9_998_766n);
    expect(await balance(tenantId)).toBe(9_998_766n);
    expect((await store.findCredits(tenantId))!).toMatchObject({
      free_credit_used: true,
      last_entry_id: second.entry.id,
    });
  });

  it('ignores the balance_after a caller sends', async () => {
    const tenantId = await newTenant();
    const row = await db
      .insertInto('credit_ledger')
      .values({ tenant_id: tenantId, amount_micros: 500n, kind: 'admin_grant', balance_after_micros: 999_999_999n })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(row.balance_after_micros).toBe(500n);
    expect(await balance(tenantId)).toBe(500n);
  });

  it('posting the same reference twice changes the balance once, also with INSERT … ON CONFLICT DO NOTHING', async () => {
    const tenantId = await newTenant();
    const a = await store.postLedgerEntry({ tenantId, amountMicros: 700n, kind: 'purchase', reference: 'pay_1' });
    const b = await store.postLedgerEntry({ tenantId, amountMicros: 700n, kind: 'purchase', reference: 'pay_1' });
    expect(a.created).toBe(true);
    expect(b).toEqual({ entry: a.entry, created: false });
    await sql`insert into credit_ledger (tenant_id, amount_micros, kind, reference) values (${tenantId}, 700, 'purchase', 'pay_1')
              on conflict do nothing`.execute(db);
    expect(await balance(tenantId)).toBe(700n);
    expect(await ledger(tenantId)).toHaveLength(1);
  });

  it('several rows in one statement each see the previous one', async () => {
    const tenantId = await newTenant();
    await sql`insert into credit_ledger (tenant_id, amount_micros, kind) values
              (${tenantId}, 1000, 'admin_grant'), (${tenantId}, -300, 'usage'), (${tenantId}, -200, 'usage')`.execute(
      db,
    );
    const rows = (await ledger(tenantId)).reverse();
    expect(rows.map((r) => r.balance_after_micros)).toEqual([1000n, 700n, 500n]);
    expect(await balance(tenantId)).toBe(500n);
  });

  it('refuses a direct balance change, a credits row that starts with money, and edits or deletes of the ledger', async () => {
    const tenantId = await newTenant();
    await store.postLedgerEntry({ tenantId, amountMicros: 100n, kind: 'admin_grant' });
    expect(
      await pgError(sql`update credits set balance_micros = 1000000000 where tenant_id = ${tenantId}`.execute(db)),
    ).toMatch(/changes only through a credit_ledger row/);
    expect(
      await pgError(sql`update credits set last_entry_id = null where tenant_id = ${tenantId}`.execute(db)),
    ).toMatch(/changes only through a credit_ledger row/);
    const other = await newTenant();
    await sql`delete from credits where tenant_id = ${other}`.execute(db);
    expect(
      await pgError(sql`insert into credits (tenant_id, balance_micros) values (${other}, 5)`.execute(db)),
    ).toMatch(/start at zero/);
    expect(
      await pgError(sql`update credit_ledger set amount_micros = 1 where tenant_id = ${tenantId}`.execute(db)),
    ).toMatch(/permanent/);
    expect(await pgError(sql`delete from credit_ledger where tenant_id = ${tenantId}`.execute(db))).toMatch(
      /permanent/,
    );
    expect(await balance(tenantId)).toBe(100n);
  });

  it('a balance changed behind the ledger (here by a rogue trigger) cannot commit', async () => {
    const tenantId = await newTenant();
    await store.postLedgerEntry({ tenantId, amountMicros: 100n, kind: 'admin_grant' });
    // Nested inside another trigger the immediate guard does not fire; the commit-time check still does.
    await sql`create table rogue (tenant_id text);
      create function rogue() returns trigger language plpgsql as $$
      begin update credits set balance_micros = balance_micros + 1000000 where tenant_id = new.tenant_id; return new; end $$;
      create trigger rogue after insert on rogue for each row execute function rogue();`.execute(db);
    try {
      const error = await pgError(sql`insert into rogue values (${tenantId})`.execute(db));
      expect(error).toMatch(/do not match the ledger/);
      expect(await balance(tenantId)).toBe(100n);
    } finally {
      await sql`drop table rogue; drop function rogue();`.execute(db);
    }
  });

  it('a ledger row without a credits row, or with the wrong sign for its kind, is refused', async () => {
    const tenantId = await newTenant();
    expect(
      await pgError(store.postLedgerEntry({ tenantId: newId('ten'), amountMicros: 1n, kind: 'admin_grant' })),
    ).toMatch(/foreign key|no credits row/);
    expect(await pgError(store.postLedgerEntry({ tenantId, amountMicros: 5n, kind: 'usage' }))).toMatch(/sign_check/);
    expect(await pgError(store.postLedgerEntry({ tenantId, amountMicros: -5n, kind: 'purchase' }))).toMatch(
      /sign_check/,
    );
    expect(await pgError(store.postLedgerEntry({ tenantId, amountMicros: 0n, kind: 'adjustment' }))).toMatch(
      /sign_check/,
    );
    expect(await balance(tenantId)).toBe(0n);
  });

  it('concurrent postings for one tenant serialise: the balance and the chain of balances stay exact', async () => {
    const tenantId = await newTenant();
    await store.postLedgerEntry({ tenantId, amountMicros: 1_000_000n, kind: 'admin_grant' });
    const debits = Array.from({ length: 60 }, (_, i) => BigInt(1 + (i % 7)));
    await Promise.all(
      debits.map((amount, i) =>
        withTransaction(db, (trx) =>
          new PlatformStore(trx).postLedgerEntry({
            tenantId,
            amountMicros: -amount,
            kind: 'usage',
            reference: `u${i}`,
          }),
        ),
      ),
    );
    const total = debits.reduce((a, b) => a + b, 0n);
    expect(await balance(tenantId)).toBe(1_000_000n - total);
    // In commit order (which is id order under the row lock), each balance is the previous one plus the amount.
    const rows = (await ledger(tenantId)).sort((a, b) => (a.balance_after_micros > b.balance_after_micros ? -1 : 1));
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]!.balance_after_micros).toBe(rows[i - 1]!.balance_after_micros + rows[i]!.amount_micros);
    }
  });

  it('deleting the tenant takes its credits and ledger with it (the only way ledger rows go)', async () => {
    const tenantId = await newTenant();
    await store.postLedgerEntry({ tenantId, amountMicros: 100n, kind: 'admin_grant' });
    await store.deleteTenant(tenantId);
    expect(await store.findCredits(tenantId)).toBeUndefined();
    expect(await ledger(tenantId)).toEqual([]);
  });
});

describe('recordUsage: one usage row and one ledger debit, together', () => {
  const usage = (tenantId: string, costMicros: bigint, marginMicros: bigint) => ({
    tenantId,
    model: 'gpt-4o',
    modelId: null,
    provider: 'openai',
    inputTokens: 1200,
    outputTokens: 340,
    costMicros,
    marginMicros,
  });

  it('debits cost + margin with the usage id as reference', async () => {
    const tenantId = await newTenant();
    await store.postLedgerEntry({ tenantId, amountMicros: 1_000_000n, kind: 'admin_grant' });
    const result = await recordUsage(db, usage(tenantId, 6_400n, 1_920n));
    expect(result).toMatchObject({ chargedMicros: 8_320n, balanceAfterMicros: 991_680n });
    const [debit] = await ledger(tenantId);
    expect(debit).toMatchObject({ kind: 'usage', amount_micros: -8_320n, reference: result.usageId });
    const row = await db
      .selectFrom('usage_logs')
      .selectAll()
      .where('id', '=', result.usageId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ tenant_id: tenantId, input_tokens: 1200, output_tokens: 340, cost_micros: 6_400n });
  });

  it('logs a free call without a debit, and writes neither row when the debit fails', async () => {
    const tenantId = await newTenant();
    const free = await recordUsage(db, usage(tenantId, 0n, 0n));
    expect(free.balanceAfterMicros).toBe(0n);
    expect(await ledger(tenantId)).toEqual([]);
    const orphan = newId('ten');
    await expect(recordUsage(db, usage(orphan, 10n, 3n))).rejects.toThrow();
    const rows = await db.selectFrom('usage_logs').select('id').where('tenant_id', '=', orphan).execute();
    expect(rows).toEqual([]);
  });

  it("joins the caller's transaction", async () => {
    const tenantId = await newTenant();
    await store.postLedgerEntry({ tenantId, amountMicros: 100n, kind: 'admin_grant' });
    await expect(
      withTransaction(db, async (trx) => {
        await recordUsage(trx, usage(tenantId, 10n, 3n));
        throw new Error('the rest of the settlement failed');
      }),
    ).rejects.toThrow('settlement failed');
    expect(await balance(tenantId)).toBe(100n);
  });
});

describe('tenant isolation in the schema', () => {
  it("a message cannot be put into another tenant's conversation", async () => {
    const a = await newTenant();
    const b = await newTenant();
    const conversation = await store.insertConversation({ id: newId('cnv'), tenantId: a, title: 'A' });
    expect(
      await pgError(
        store.insertMessage({
          id: newId('msg'),
          tenantId: b,
          conversationId: conversation.id,
          role: 'user',
          content: 'hi',
          channel: 'web',
          metadata: {},
        }),
      ),
    ).toMatch(/messages_conversation_fkey/);
  });

  it('a user cannot be deleted while its tenant exists', async () => {
    const tenantId = await newTenant();
    const tenant = (await store.findTenant(tenantId))!;
    expect(await pgError(store.deleteUser(tenant.user_id))).toMatch(/tenants_user_id_fkey/);
  });

  it('roles, channels and metadata are checked', async () => {
    const tenantId = await newTenant();
    const conversation = await store.insertConversation({ id: newId('cnv'), tenantId, title: '' });
    const insert = (values: Record<string, unknown>) =>
      sql`insert into messages (id, conversation_id, tenant_id, role, content, channel, metadata)
          values (${newId('msg')}, ${conversation.id}, ${tenantId}, ${values.role ?? 'user'}, 'x',
                  ${values.channel ?? 'web'}, ${values.metadata ?? '{}'}::jsonb)`.execute(db);
    expect(await pgError(insert({ role: 'robot' }))).toMatch(/role_check/);
    expect(await pgError(insert({ channel: 'sms' }))).toMatch(/channel_check/);
    expect(await pgError(insert({ metadata: '[1]' }))).toMatch(/metadata_check/);
    await insert({ role: 'tool', channel: 'whatsapp', metadata: '{"tool":"shell"}' });
  });
});

describe('models seed', () => {
  it('inserts the five models at list price with a 30% markup, once, and never overwrites an admin edit', async () => {
    expect(await seedModels(store)).toEqual(SEED_MODELS.map((m) => m.name));
    const byName = Object.fromEntries((await store.listModels({ enabledOnly: false })).map((m) => [m.name, m]));
    expect(Object.keys(byName).sort()).toEqual(
      ['claude-opus-4', 'claude-sonnet-4', 'gemini-2.0-flash', 'gpt-4o', 'gpt-4o-mini'].sort(),
    );
    expect(byName['gpt-4o']).toMatchObject({
      provider: 'openai',
      provider_cost_input_per_m_micros: 2_500_000n,
      provider_cost_output_per_m_micros: 10_000_000n,
      markup_pct: 30,
      enabled: true,
      demo: false,
    });
    expect(byName['claude-opus-4']).toMatchObject({
      provider: 'anthropic',
      provider_cost_output_per_m_micros: 75_000_000n,
    });
    expect(byName['gemini-2.0-flash']).toMatchObject({
      provider: 'google',
      provider_cost_input_per_m_micros: 100_000n,
    });

    await db.updateTable('models').set({ markup_pct: 35 }).where('name', '=', 'gpt-4o').execute();
    expect(await seedModels(store)).toEqual([]);
    expect((await store.findModelByName('gpt-4o'))!.markup_pct).toBe(35);
  });

  it('prices for users include the markup, rounded up to the micro-dollar', () => {
    expect(priceWithMarkup(2_500_000n, 30)).toBe(3_250_000n);
    expect(priceWithMarkup(1n, 30)).toBe(2n);
    expect(priceWithMarkup(0n, 30)).toBe(0n);
    const row = {
      id: 'mdl_x',
      name: 'gpt-4o-mini',
      display_name: 'GPT-4o mini',
      provider: 'openai' as const,
      upstream_model: 'gpt-4o-mini',
      provider_cost_input_per_m_micros: 150_000n,
      provider_cost_output_per_m_micros: 600_000n,
      markup_pct: 30,
      enabled: true,
      demo: false,
      context_window: 128_000,
      max_output_tokens: 16_384,
      created_at: new Date(),
      updated_at: new Date(),
    };
    expect(publicModel(row).pricing).toEqual({
      currency: 'USD',
      inputPerMillion: '0.195',
      outputPerMillion: '0.78',
      inputPerMillionMicros: '195000',
      outputPerMillionMicros: '780000',
    });
  });
});
