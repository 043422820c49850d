import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, waitForHttp } from '@agentstack/core';
import { createTestDatabase } from '@agentstack/db/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, json } from './support/helpers.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase(); // empty: the commands below migrate it
  dataDir = await mkdtemp(join(tmpdir(), 'platform-api-main-'));
  await chmod(dataDir, 0o755);
});
afterAll(async () => {
  await database?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const run = (command: string, env: Record<string, string> = {}) =>
  spawnSync(tsx, [main, command], {
    env: { ...process.env, DATABASE_URL: database.url, SERVICE_DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('main: migrate, seed, serve', () => {
  it('db:migrate applies the migrations, twice without harm', () => {
    for (let i = 0; i < 2; i++) {
      const result = run('migrate');
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
    }
  });

  it('db:seed inserts the models and, outside production, a dev admin whose password is kept 0600', async () => {
    const first = run('seed');
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain(
      'models inserted: gpt-4o, gpt-4o-mini, claude-sonnet-4, claude-opus-4, gemini-2.0-flash',
    );
    expect(first.stdout).toMatch(/dev admin \(local only\): admin@agentsquads\.local {2}password \S{20}/);
    expect(await mode(join(dataDir, 'dev-admin.json'))).toBe(0o600);
    expect(await mode(join(dataDir, 'auth-secret'))).toBe(0o600);
    const { rows } = await database.pool.query(
      "select u.role, t.status from users u join tenants t on t.user_id = u.id where u.email = 'admin@agentsquads.local'",
    );
    expect(rows).toEqual([{ role: 'admin', status: 'active' }]);

    const again = run('seed');
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('models inserted: none (all present)');
    const { rows: admins } = await database.pool.query("select count(*)::int as n from users where role = 'admin'");
    expect(admins[0].n).toBe(1);
  });

  it('never creates the dev admin in production', async () => {
    const other = await createTestDatabase();
    try {
      const result = spawnSync(tsx, [main, 'seed'], {
        env: {
          ...process.env,
          NODE_ENV: 'production',
          DATABASE_URL: other.url,
          BETTER_AUTH_SECRET: randomBytes(32).toString('hex'),
          PLATFORM_PUBLIC_URL: 'https://agentsquads.example',
          SERVICE_DATA_DIR: join(dataDir, 'prod'),
          LOG_LEVEL: 'warn',
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).not.toContain('dev admin');
      const { rows } = await other.pool.query('select count(*)::int as n from users');
      expect(rows[0].n).toBe(0);
      const { rows: models } = await other.pool.query('select count(*)::int as n from models');
      expect(models[0].n).toBe(5);
    } finally {
      await other.drop();
    }
  });

  it('refuses to start in production without BETTER_AUTH_SECRET, naming it', () => {
    const result = run('serve', { NODE_ENV: 'production', PLATFORM_PUBLIC_URL: 'https://agentsquads.example' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('BETTER_AUTH_SECRET');
    expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('serves: health, the price list, and the dev admin can sign in and administer', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = startProcess(tsx, [main, 'serve'], {
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        SERVICE_DATA_DIR: dataDir,
        PLATFORM_API_PORT: String(port),
        PLATFORM_PUBLIC_URL: url,
        LOG_LEVEL: 'warn',
      },
    });
    try {
      await waitForHttp(`${url}/api/health`, 30_000);
      expect(await json(await fetch(`${url}/api/health`))).toEqual({ status: 'ok', service: 'platform-api' });
      const models = await json(await fetch(`${url}/api/public/models`));
      expect(models.items).toHaveLength(5);
      const { email, password } = JSON.parse(await readFile(join(dataDir, 'dev-admin.json'), 'utf8'));
      expect(await readFile(join(dataDir, 'dev-credentials.txt'), 'utf8')).toContain(password);
      const browser = new Browser(url, '10.1.1.1');
      const signIn = await browser.fetch('/api/auth/sign-in/email', { method: 'POST', json: { email, password } });
      expect(signIn.status).toBe(200);
      expect((await browser.fetch('/api/admin/tenants')).status).toBe(200);
    } finally {
      await proc.stop();
    }
  });
});
