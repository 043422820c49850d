import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from './embedded.js';
import { dropTestDatabases, startRedisServer } from './testing.js';

/**
 * vitest global setup: one PostgreSQL and one Redis for the whole run, found by `createTestDatabase` and
 * `testRedisUrl` through the environment (test workers start after this and inherit it).
 * - `TEST_DATABASE_URL` set: use that server. Otherwise: an embedded PostgreSQL 18 in a temp dir, removed at the end.
 * - `REDIS_URL` set: use it. Otherwise: `/usr/bin/redis-server` on a free port, stopped at the end.
 * At the end, test databases this run left behind are dropped, so a shared server does not fill up.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const teardown: (() => Promise<unknown>)[] = [];
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const saved = { TEST_RUN_ID: process.env.TEST_RUN_ID, TEST_DATABASE_URL: process.env.TEST_DATABASE_URL };
  process.env.TEST_RUN_ID = runId;

  try {
    let adminUrl = process.env.TEST_DATABASE_URL;
    if (!adminUrl) {
      const dir = await mkdtemp(join(tmpdir(), 'agentstack-test-pg-'));
      teardown.push(() => rm(dir, { recursive: true, force: true }));
      await chmod(dir, 0o755); // run as root, postgres runs as its own user and must pass through
      const server = await startEmbeddedPostgres({
        dataDir: join(dir, 'data'),
        durable: false,
        settings: { max_connections: '300' },
      });
      teardown.push(() => server.stop());
      adminUrl = server.urlFor('postgres');
      process.env.TEST_DATABASE_URL = adminUrl;
    } else {
      const url = adminUrl;
      teardown.push(() => dropTestDatabases(url, runId));
    }
    project.provide('testDatabaseUrl', adminUrl);

    let redisUrl = process.env.REDIS_URL || process.env.TEST_REDIS_URL;
    if (!redisUrl) {
      const redis = await startRedisServer();
      teardown.push(() => redis.stop());
      redisUrl = redis.url;
      process.env.TEST_REDIS_URL = redisUrl;
      teardown.push(async () => delete process.env.TEST_REDIS_URL);
    }
    project.provide('testRedisUrl', redisUrl);
  } catch (err) {
    await runTeardown(teardown);
    throw err;
  }

  return async () => {
    await runTeardown(teardown);
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}

async function runTeardown(steps: (() => Promise<unknown>)[]): Promise<void> {
  for (const step of steps.reverse()) {
    await step().catch((err) => console.error('test teardown step failed:', err));
  }
}
