import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { freePort, type ManagedProcess, startProcess, waitFor } from '@agentstack/core';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { migrate } from './migrate.js';
import { dieWithParent } from './parent-death.js';
import { createDatabase } from './pool.js';

/**
 * Test helpers for every package: a fresh PostgreSQL database per test file (or per test) and a Redis URL.
 *
 * The server comes from `TEST_DATABASE_URL` (an admin URL, e.g. the machine's PostgreSQL 15), which the
 * global setup (`@agentstack/db/testing/global-setup`) sets to a shared embedded PostgreSQL 18 when it was
 * not given. CI runs the same tests both ways.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the PostgreSQL server tests create their databases on (set by the global setup). */
    testDatabaseUrl: string;
    testRedisUrl: string;
  }
}

export interface TestDatabase<DB> {
  name: string;
  url: string;
  db: Kysely<DB>;
  pool: pg.Pool;
  /** Closes `db`, disconnects anyone still connected and drops the database. */
  drop(): Promise<void>;
}

/** Every test database name starts with this, then the run id, so a run can sweep up what it left behind. */
export const TEST_DATABASE_PREFIX = 'test_';

export function testDatabaseAdminUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    throw new Error(
      'no test PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) or add ' +
        "globalSetup: ['@agentstack/db/testing/global-setup'] to vitest.config.ts",
    );
  }
  return url;
}

/** `url` with its database replaced by `database` (query parameters such as sslmode are kept). */
export function databaseUrl(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

// biome-ignore lint/suspicious/noExplicitAny: an untyped database is the useful default in tests
export async function createTestDatabase<DB = any>({
  migrationsDir,
}: {
  migrationsDir?: string;
} = {}): Promise<TestDatabase<DB>> {
  const adminUrl = testDatabaseAdminUrl();
  const runId = process.env.TEST_RUN_ID ?? 'adhoc';
  const name = `${TEST_DATABASE_PREFIX}${runId}_${randomBytes(5).toString('hex')}`;
  await admin(adminUrl, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
  const url = databaseUrl(adminUrl, name);
  try {
    if (migrationsDir) await migrate({ connectionString: url, dir: migrationsDir });
  } catch (err) {
    await dropDatabase(adminUrl, name);
    throw err;
  }
  const { db, pool, close } = createDatabase<DB>({ connectionString: url, max: 5, applicationName: 'test' });
  let dropping: Promise<void> | undefined;
  return {
    name,
    url,
    db,
    pool,
    drop: () => {
      dropping ??= close().then(() => dropDatabase(adminUrl, name));
      return dropping;
    },
  };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  // WITH (FORCE) (PostgreSQL 13+) terminates the remaining connections first.
  await admin(adminUrl, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
  );
}

/** Drops every test database of one run (what crashed tests left behind on a shared server). */
export async function dropTestDatabases(adminUrl: string, runId: string): Promise<string[]> {
  const pattern = `${TEST_DATABASE_PREFIX}${runId}_`.replace(/[\\%_]/g, '\\$&') + '%';
  const names = await admin(adminUrl, async (client) => {
    const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [
      pattern,
    ]);
    return rows.map((r) => r.datname);
  });
  for (const name of names) await dropDatabase(adminUrl, name);
  return names;
}

async function admin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'test-admin' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface RedisServer {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A throwaway Redis (no persistence) on a free port, tracked by pid. */
export async function startRedisServer({ port }: { port?: number } = {}): Promise<RedisServer> {
  await access(REDIS_SERVER).catch(() => {
    throw new Error(`${REDIS_SERVER} not found: install Debian's redis-server or set REDIS_URL`);
  });
  const chosen = port ?? (await freePort());
  // Dies with the process that started it: vitest ends its workers without running exit hooks.
  const [command, args] = dieWithParent(
    REDIS_SERVER,
    ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    'SIGTERM',
  );
  const proc: ManagedProcess = startProcess(command, args);
  let exited = false;
  proc.exited.then(() => {
    exited = true;
  });
  await waitFor(
    () => {
      if (exited) throw new Error(`redis-server exited: ${proc.output().trim()}`);
      return proc.output().includes('Ready to accept connections');
    },
    { timeoutMs: 10_000, what: 'redis-server to accept connections' },
  );
  return { url: `redis://127.0.0.1:${chosen}`, port: chosen, pid: proc.pid, stop: () => proc.stop(2_000) };
}

let ownRedis: Promise<RedisServer> | undefined;

/**
 * `REDIS_URL` when set; else the one the global setup started (`TEST_REDIS_URL`); else a redis-server
 * started for this test process, which dies with it.
 */
export async function testRedisUrl(): Promise<string> {
  const given = process.env.REDIS_URL || process.env.TEST_REDIS_URL;
  if (given) return given;
  ownRedis ??= startRedisServer();
  return (await ownRedis).url;
}
