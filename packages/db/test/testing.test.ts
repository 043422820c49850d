import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { createTestDatabase, dropTestDatabases, testDatabaseAdminUrl, testRedisUrl } from '../src/testing.js';

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: testDatabaseAdminUrl() });
  await client.connect();
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

describe('test helpers', () => {
  it('the global setup provides the server it chose', () => {
    expect(inject('testDatabaseUrl')).toBe(process.env.TEST_DATABASE_URL);
    expect(inject('testRedisUrl')).toMatch(/^redis:\/\//);
  });

  it('creates a fresh, migrated database and drops it even while connections are open', async () => {
    const a = await createTestDatabase({ migrationsDir: join(import.meta.dirname, 'fixtures', 'migrations') });
    const b = await createTestDatabase();
    expect(a.name).not.toBe(b.name);
    expect(a.name).toMatch(/^test_[a-z0-9]+_[0-9a-f]{10}$/);
    const { rows } = await a.pool.query('SELECT count(*) AS n FROM schema_migrations');
    expect(rows[0].n).toBe(3n);
    await expect(b.pool.query('SELECT 1 FROM schema_migrations')).rejects.toThrow('does not exist');

    // A connection the test forgot to close does not block the drop.
    const straggler = new pg.Client({ connectionString: a.url });
    straggler.on('error', () => {});
    await straggler.connect();
    await a.drop();
    await a.drop();
    expect(await databaseExists(a.name)).toBe(false);
    await straggler.end().catch(() => {});
    await b.drop();
  });

  it('a failing migration leaves no database behind', async () => {
    // A run id of its own, so databases of test files running in parallel don't count.
    const runId = process.env.TEST_RUN_ID;
    process.env.TEST_RUN_ID = `own${Date.now().toString(36)}`;
    try {
      await expect(createTestDatabase({ migrationsDir: join(import.meta.dirname, 'no-such-dir') })).rejects.toThrow(
        'ENOENT',
      );
      expect(await dropTestDatabases(testDatabaseAdminUrl(), process.env.TEST_RUN_ID)).toEqual([]);
    } finally {
      process.env.TEST_RUN_ID = runId;
    }
  });

  it('hands out a working Redis', async () => {
    const redis = new Redis(await testRedisUrl());
    expect(await redis.ping()).toBe('PONG');
    await redis.quit();
  });
});
