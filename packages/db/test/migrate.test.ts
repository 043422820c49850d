import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../src/migrate.js';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';

const fixtures = join(import.meta.dirname, 'fixtures', 'migrations');

describe('migrate', () => {
  let database: TestDatabase<any>;
  let dir: string;

  beforeEach(async () => {
    database = await createTestDatabase();
    // Each test edits its own copy of the migrations.
    dir = await mkdtemp(join(tmpdir(), 'migrations-'));
    await cp(fixtures, dir, { recursive: true });
  });
  afterEach(async () => {
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const tables = async () =>
    (
      await database.pool.query<{ tablename: string }>(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      )
    ).rows.map((r) => r.tablename);
  const recorded = async () =>
    (await database.pool.query('SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version'))
      .rows;

  it('applies files in numeric order and records them; a rerun is a no-op', async () => {
    const applied = await migrate({ pool: database.pool, dir });
    expect(applied.map((m) => m.file)).toEqual(['001_accounts.sql', '002_ledger.sql', '003_ledger_index.sql']);
    expect(await tables()).toEqual(['accounts', 'ledger', 'schema_migrations']);
    const rows = await recorded();
    expect(rows.map((r) => [r.version, r.name])).toEqual([
      [1, 'accounts'],
      [2, 'ledger'],
      [3, 'ledger_index'],
    ]);
    expect(rows[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0].applied_at).toBeInstanceOf(Date);

    expect(await migrate({ connectionString: database.url, dir })).toEqual([]);
    expect(await recorded()).toEqual(rows);
  });

  it('applies only what is new', async () => {
    await rm(join(dir, '003_ledger_index.sql'));
    await migrate({ pool: database.pool, dir });
    await cp(join(fixtures, '003_ledger_index.sql'), join(dir, '003_ledger_index.sql'));
    await writeFile(join(dir, '010_later.sql'), 'ALTER TABLE accounts ADD COLUMN note text;');
    const applied = await migrate({ pool: database.pool, dir });
    expect(applied.map((m) => m.version)).toEqual([3, 10]);
  });

  it('refuses a migration edited after it was applied, naming the file', async () => {
    await migrate({ pool: database.pool, dir });
    await appendFile(join(dir, '002_ledger.sql'), '\n-- tweak\n');
    await writeFile(join(dir, '004_more.sql'), 'CREATE TABLE more (id int);');
    await expect(migrate({ pool: database.pool, dir })).rejects.toThrow(
      /migration 002_ledger\.sql was edited after it was applied \(checksum [0-9a-f]{12}…/,
    );
    // Nothing after the check ran either.
    expect(await tables()).not.toContain('more');
  });

  it('reports a recorded migration whose file is gone', async () => {
    await migrate({ pool: database.pool, dir });
    await rm(join(dir, '002_ledger.sql'));
    await expect(migrate({ pool: database.pool, dir })).rejects.toThrow(
      'migration version 2 (ledger) was applied but its file is missing',
    );
  });

  it('rolls a failing migration back entirely and names the file, the line and the PostgreSQL error', async () => {
    await writeFile(
      join(dir, '004_broken.sql'),
      'CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT no_such_column FROM half_done;\n',
    );
    const error = await migrate({ pool: database.pool, dir }).catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^migration 004_broken\.sql failed \(line 3\): column "no_such_column" does not exist \[42703\]/,
    );
    expect(await tables()).not.toContain('half_done');
    // The ones before it stay applied; the broken one left no record.
    expect((await recorded()).map((r) => r.version)).toEqual([1, 2, 3]);
    // The pool's connection is usable afterwards (the transaction was rolled back, the lock released).
    await rm(join(dir, '004_broken.sql'));
    expect(await migrate({ pool: database.pool, dir })).toEqual([]);
  });

  it('refuses a new migration numbered before one already applied, and stray file names', async () => {
    await rm(join(dir, '002_ledger.sql'));
    await writeFile(join(dir, '003_ledger_index.sql'), 'SELECT 1;');
    await migrate({ pool: database.pool, dir });
    await cp(join(fixtures, '002_ledger.sql'), join(dir, '002_ledger.sql'));
    await expect(migrate({ pool: database.pool, dir })).rejects.toThrow(
      'migration 002_ledger.sql is numbered before 003_ledger_index.sql, which is already applied',
    );
    await writeFile(join(dir, '004-oops.sql'), '');
    await expect(migrate({ pool: database.pool, dir })).rejects.toThrow('004-oops.sql is not named NNN_name.sql');
  });

  it('is safe when several processes migrate the same fresh database at once', async () => {
    // Slow the first migration down so the runs really overlap.
    await writeFile(join(dir, '000_wait.sql'), 'SELECT pg_sleep(0.2);');
    const runs = await Promise.all([
      migrate({ connectionString: database.url, dir }),
      migrate({ connectionString: database.url, dir }),
      migrate({ pool: database.pool, dir }),
    ]);
    const appliedCounts = runs.map((r) => r.length).sort();
    expect(appliedCounts).toEqual([0, 0, 4]);
    expect((await recorded()).map((r) => r.version)).toEqual([0, 1, 2, 3]);
  });
});
