import { hkdfSync } from 'node:crypto';
import { join } from 'node:path';
import { loadOrCreateMasterSecret } from '@agentstack/core';
import type { PlatformConfig } from './config.js';

export interface PlatformSecrets {
  /** Better Auth's secret: signs cookies, encrypts TOTP secrets and OAuth state. */
  authSecret: string;
  /** Key of the service tokens. */
  serviceTokenKey: Uint8Array;
}

/**
 * `BETTER_AUTH_SECRET` from the environment (required in production), or in the embedded default a secret
 * generated once into `<data dir>/auth-secret` (mode 0600). The service-token key is its own variable or,
 * when unset, derived from the auth secret for that one purpose (HKDF), so one secret is enough to run.
 */
export async function resolveSecrets(config: PlatformConfig): Promise<PlatformSecrets> {
  const authSecret =
    config.BETTER_AUTH_SECRET ?? (await loadOrCreateMasterSecret(join(config.dataDir, 'auth-secret'))).toString('hex');
  const serviceTokenKey = config.PLATFORM_SERVICE_TOKEN_SECRET
    ? new Uint8Array(Buffer.from(config.PLATFORM_SERVICE_TOKEN_SECRET, 'utf8'))
    : new Uint8Array(hkdfSync('sha256', authSecret, Buffer.alloc(0), 'agentsquads:service-token', 32));
  return { authSecret, serviceTokenKey };
}
