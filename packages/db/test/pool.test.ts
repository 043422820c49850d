import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Generated, sql, withTransaction } from '../src/pool.js';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';

interface DB {
  accounts: { id: string; balance: bigint; created_at: Generated<Date> };
  ledger: { id: Generated<bigint>; account_id: string; amount: bigint; rate: string | null; day: string | null };
}

describe('createDatabase', () => {
  let database: TestDatabase<DB>;
  beforeAll(async () => {
    database = await createTestDatabase<DB>({ migrationsDir: join(import.meta.dirname, 'fixtures', 'migrations') });
  });
  afterAll(() => database.drop());

  it('runs against PostgreSQL 15 or newer (and says which)', async () => {
    const { rows } = await sql<{ num: string; version: string }>`
      SELECT current_setting('server_version_num') AS num, version() AS version`.execute(database.db);
    const num = Number(rows[0]!.num);
    console.log(`PostgreSQL server_version_num=${num} (${rows[0]!.version.split(' on ')[0]})`);
    expect(num).toBeGreaterThanOrEqual(150000);
  });

  it('round-trips bigint above 2^53 exactly, in columns, arrays and sums', async () => {
    const big = 2n ** 60n + 7n;
    await database.db.insertInto('accounts').values({ id: 'acc_1', balance: big }).execute();
    await database.db
      .insertInto('ledger')
      .values([
        { account_id: 'acc_1', amount: big, rate: '0.1234567891', day: '2026-03-01' },
        { account_id: 'acc_1', amount: 1n, rate: null, day: null },
      ])
      .execute();

    const account = await database.db
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', 'acc_1')
      .executeTakeFirstOrThrow();
    expect(account.balance).toBe(big);
    expect(account.created_at).toBeInstanceOf(Date);

    const { rows } = await sql<{ total: bigint; amounts: bigint[]; fn: bigint; count: bigint }>`
      SELECT sum(amount)::bigint AS total, array_agg(amount ORDER BY id) AS amounts,
             ledger_total('acc_1') AS fn, count(*) AS count
      FROM ledger`.execute(database.db);
    expect(rows[0]).toEqual({ total: big + 1n, amounts: [big, 1n], fn: big + 1n, count: 2n });
  });

  it('reads numeric as a string and date as YYYY-MM-DD', async () => {
    const row = await database.db
      .selectFrom('ledger')
      .select(['rate', 'day', 'id'])
      .where('rate', 'is not', null)
      .executeTakeFirstOrThrow();
    expect(row.rate).toBe('0.1234567891');
    expect(row.day).toBe('2026-03-01');
    expect(typeof row.id).toBe('bigint');
    const { rows } = await sql<{ n: string[]; d: string[] }>`
      SELECT ARRAY[1.5, 2.25]::numeric[] AS n, ARRAY['2026-01-02'::date] AS d`.execute(database.db);
    expect(rows[0]).toEqual({ n: ['1.5', '2.25'], d: ['2026-01-02'] });
  });

  it('withTransaction commits on success and rolls back on error', async () => {
    await withTransaction(database.db, (trx) =>
      trx.insertInto('accounts').values({ id: 'acc_2', balance: 5n }).execute(),
    );
    await expect(
      withTransaction(database.db, async (trx) => {
        await trx.updateTable('accounts').set({ balance: 0n }).where('id', '=', 'acc_2').execute();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const row = await database.db.selectFrom('accounts').select('balance').where('id', '=', 'acc_2').executeTakeFirst();
    expect(row?.balance).toBe(5n);
  });
});
