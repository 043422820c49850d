import { addressSchema } from '@agentstack/chain';
import { ConfigError, env, loadConfig } from '@agentstack/core';
import { paymentEnv } from '@agentstack/x402';
import { z } from 'zod';

export const spawnConfigSchema = z.object({
  SPAWN_PORT: env.port(4103),
  SPAWN_HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: env.url(),
  ...paymentEnv,
  /** Where x402 payments for spawn's routes go. */
  PAY_TO_ADDRESS: addressSchema,
  SERVICE_DATA_DIR: z.string().default('.data/spawn'),
  /** `local`: sandboxes on this machine (needs root); `hetzner`: Hetzner Cloud (needs HETZNER_TOKEN). */
  SPAWN_PROVIDER: z.enum(['local', 'hetzner']).default('local'),
  HETZNER_TOKEN: z.string().min(1).optional(),
  HETZNER_API_URL: z.url().default('https://api.hetzner.cloud/v1'),
  HETZNER_REQUESTS_PER_HOUR: env.int(3600, 1),
  /** The local provider's sandboxes (default: SERVICE_DATA_DIR/sandboxes). */
  SPAWN_SANDBOX_DIR: z.string().optional(),
  /** The host reported in servers' SSH endpoints (the local provider listens on 127.0.0.1). */
  SPAWN_SSH_HOST: z.string().default('127.0.0.1'),
  SPAWN_USER_DATA_TIMEOUT_SECONDS: env.int(300, 1),
  SPAWN_SWEEP_INTERVAL_SECONDS: env.int(60, 1),
  /** 0 turns periodic reconciliation off (it still runs at start and through the admin route). */
  SPAWN_RECONCILE_INTERVAL_SECONDS: env.int(300, 0),
  /** JSON file overriding the catalog: types, images, locations, deposits, burn, prices. */
  SPAWN_CATALOG_FILE: z.string().optional(),
  /** 32-byte hex key sealing user_data and webhook secrets; default: a key file in SERVICE_DATA_DIR. */
  SPAWN_MASTER_KEY: env.hexKey(32).optional(),
  /** Allow webhook URLs on private/loopback addresses (local development only). */
  SPAWN_WEBHOOK_ALLOW_PRIVATE: env.bool(false),
  /** Bearer token for POST /v1/admin/reconcile; unset: the route does not exist. */
  SPAWN_ADMIN_TOKEN: z.string().min(24, 'at least 24 characters').optional(),
  LOG_LEVEL: env.logLevel(),
});

export type SpawnConfig = z.infer<typeof spawnConfigSchema>;

export function loadSpawnConfig(source: Record<string, string | undefined> = process.env): SpawnConfig {
  const config = loadConfig(spawnConfigSchema, source);
  if (config.SPAWN_PROVIDER === 'hetzner' && !config.HETZNER_TOKEN) {
    throw new ConfigError([
      { variable: 'HETZNER_TOKEN', message: 'required when SPAWN_PROVIDER=hetzner (it is not set)' },
    ]);
  }
  return config;
}
