import { withTransaction } from '@agentstack/db';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../src/ledger.js';
import { ledgerSql, type SpawnDB, spawnMigrationsDir } from '../src/store.js';

let database: TestDatabase<SpawnDB>;
let ledger: Ledger;
const owner = '0x8ba1f109551bD432803012645Ac136ddd64DBA72';

beforeAll(async () => {
  database = await createTestDatabase<SpawnDB>({ migrationsDir: spawnMigrationsDir });
  ledger = new Ledger(database.db);
});
afterAll(async () => {
  await database?.drop();
});

describe('the deposit ledger', () => {
  it('credits a settled payment once, however often it is replayed', async () => {
    expect(await ledger.deposit(owner, 5_000_000n, 'deposit:0xabc')).toMatchObject({
      credited: true,
      balance: { available: 5_000_000n },
    });
    expect(await ledger.deposit(owner, 5_000_000n, 'deposit:0xabc')).toMatchObject({
      credited: false,
      balance: { available: 5_000_000n },
    });
    const rows = await ledger.entries(owner);
    expect(rows.map((r) => [r.kind, r.amount, r.available_after, r.reserved_after])).toEqual([
      ['deposit', 5_000_000n, 5_000_000n, 0n],
    ]);
  });

  it('never lets parallel reservations overdraw the balance', async () => {
    // 20 reservations of 1.00 race for 5.00: exactly five win, each with its ledger row.
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        withTransaction(database.db, async (trx) => {
          const after = await ledgerSql.move(trx, owner, -1_000_000n, 1_000_000n);
          if (after) await ledgerSql.record(trx, { owner, kind: 'reserve', amount: 1_000_000n, after });
          return after;
        }),
      ),
    );
    expect(results.filter(Boolean).length).toBe(5);
    expect(await ledger.balance(owner)).toEqual({ available: 0n, reserved: 5_000_000n });
    const reserves = (await ledger.entries(owner)).filter((r) => r.kind === 'reserve');
    expect(reserves.length).toBe(5);
    expect(reserves.map((r) => r.available_after).sort()).toEqual([0n, 1_000_000n, 2_000_000n, 3_000_000n, 4_000_000n]);
  });

  it('refuses any move that would make either side negative, and the database refuses it too', async () => {
    expect(await ledgerSql.move(database.db, owner, 0n, -6_000_000n)).toBeUndefined();
    expect(await ledgerSql.move(database.db, owner, -1n, 0n)).toBeUndefined();
    await expect(
      database.db.updateTable('accounts').set({ available: -1n }).where('owner', '=', owner).execute(),
    ).rejects.toThrow(/check constraint/);
    expect(await ledger.balance(owner)).toEqual({ available: 0n, reserved: 5_000_000n });
  });

  it('charges a server once per day (unique burn per server and day)', async () => {
    await database.db
      .insertInto('ledger')
      .values({
        owner,
        server_id: 'srv_x',
        kind: 'burn',
        amount: 1n,
        available_after: 0n,
        reserved_after: 0n,
        reference: null,
        day: '2026-01-01',
      })
      .execute();
    await expect(
      database.db
        .insertInto('ledger')
        .values({
          owner,
          server_id: 'srv_x',
          kind: 'burn',
          amount: 1n,
          available_after: 0n,
          reserved_after: 0n,
          reference: null,
          day: '2026-01-01',
        })
        .execute(),
    ).rejects.toThrow(/ledger_burn_once/);
  });

  it('credits a failed route’s fee once', async () => {
    expect((await ledger.creditFee(owner, 10_000n, 'fee:0xdef')).credited).toBe(true);
    expect((await ledger.creditFee(owner, 10_000n, 'fee:0xdef')).credited).toBe(false);
    expect((await ledger.balance(owner)).available).toBe(10_000n);
  });
});
