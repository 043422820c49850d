import { readMigrations, sql } from '@agentstack/db';
import { createTestDatabase } from '@agentstack/db/testing';
import { getMigrations } from 'better-auth/db/migration';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsDir } from '../src/db.js';
import { startTestPlatform, type TestPlatform } from './support/helpers.js';

/**
 * The SQL in migrations/001_auth.sql is written by hand. Better Auth 1.7.7 is asked, with the exact options
 * the running platform uses (plugins included), whether it would change anything: its migration planner
 * must find no table, column or index to add and no column it cannot write.
 */
let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform({ AUTH_RATE_LIMIT_STORAGE: 'database' });
});
afterAll(async () => {
  await t?.stop();
});

describe('Better Auth against our hand-written schema', () => {
  it('finds nothing to create, add or relax', async () => {
    const plan = await getMigrations(t.platform.auth.options);
    expect(plan.toBeCreated.map((c) => c.table)).toEqual([]);
    expect(plan.toBeAdded.map((c) => ({ table: c.table, fields: Object.keys(c.fields) }))).toEqual([]);
    expect(plan.toBeAddedIndexes.map((i) => i.name)).toEqual([]);
    expect(plan.schemaProblems).toEqual([]);
    expect(plan.unsafeChanges).toEqual([]);
  });

  it('notices a drifted schema (so the check above is not vacuous)', async () => {
    const other = await createTestDatabase({ migrationsDir });
    try {
      await sql`alter table two_factors drop column locked_until`.execute(other.db);
      await sql`alter table users add column nickname text not null default 'x'`.execute(other.db);
      await sql`alter table users alter column nickname drop default`.execute(other.db);
      const plan = await getMigrations({ ...t.platform.auth.options, database: other.pool });
      expect(plan.toBeAdded).toEqual([
        expect.objectContaining({ table: 'two_factors', fields: { locked_until: expect.anything() } }),
      ]);
      expect(plan.schemaProblems.join('\n')).toContain('nickname');
    } finally {
      await other.drop();
    }
  });

  it('covers every table the auth options name', async () => {
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = 'public' order by table_name`.execute(
      t.platform.db,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['users', 'sessions', 'accounts', 'verifications', 'two_factors', 'rate_limits']),
    );
  });

  it('keeps migrations numbered and named', async () => {
    const files = await readMigrations(migrationsDir);
    expect(files.map((f) => f.file)).toEqual([
      '001_auth.sql',
      '002_tenants.sql',
      '003_conversations.sql',
      '004_models_usage.sql',
    ]);
  });
});
