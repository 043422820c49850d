import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, env, loadConfig } from '../src/config.js';

const schema = z.object({
  WALLET_PORT: env.port(4101),
  DATABASE_URL: env.url(),
  WALLET_MASTER_SECRET: env.hexKey(32).optional(),
  DEMO: env.bool(false),
  ALLOW_HOSTS: env.list().optional(),
});

describe('loadConfig', () => {
  it('applies defaults and coerces values', () => {
    const config = loadConfig(schema, { DATABASE_URL: 'postgres://localhost/x', DEMO: 'yes', ALLOW_HOSTS: 'a, b' });
    expect(config).toEqual({
      WALLET_PORT: 4101,
      DATABASE_URL: 'postgres://localhost/x',
      DEMO: true,
      ALLOW_HOSTS: ['a', 'b'],
    });
  });

  it('names every missing or bad variable in one error', () => {
    let error: unknown;
    try {
      loadConfig(schema, { WALLET_PORT: 'abc', DEMO: 'maybe', WALLET_MASTER_SECRET: 'short' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.map((p) => p.variable).sort();
    expect(problems).toEqual(['DATABASE_URL', 'DEMO', 'WALLET_MASTER_SECRET', 'WALLET_PORT']);
    const message = (error as ConfigError).message;
    expect(message).toContain('WALLET_PORT');
    expect(message).toContain('"abc"');
    expect(message).toContain('DATABASE_URL');
    expect(message).toContain('it is not set');
    // Secret values are never echoed, even when wrong.
    expect(message).not.toContain('short');
  });

  it('treats an empty value as unset', () => {
    expect(loadConfig(schema, { DATABASE_URL: 'postgres://h/d', WALLET_PORT: '' }).WALLET_PORT).toBe(4101);
  });
});
