import { join } from 'node:path';
import { ensureRuntimeBundle, HANDS_DIR } from '@agentsquads/runtime/bundle';
import { createSecretBox, type Logger } from '@agentstack/core';
import { createSandboxManager } from '@agentstack/sandbox';
import type { PlatformConfig } from '../config.js';
import { DockerOrchestrator } from './docker.js';
import { ensureTenantImage } from './docker-image.js';
import { TenantGateway } from './gateway.js';
import { SandboxOrchestrator } from './sandbox.js';
import type { TenantLimits, TenantOrchestrator } from './types.js';

export type { TenantOrchestrator } from './types.js';

/** Runtime limits from the configuration (TENANT_MEMORY_MB, TENANT_CPUS, TENANT_PIDS). */
export const configuredLimits = (config: PlatformConfig): TenantLimits => ({
  memoryBytes: config.TENANT_MEMORY_MB * 1024 * 1024,
  cpus: config.TENANT_CPUS,
  pids: config.TENANT_PIDS,
});

/**
 * The orchestrator `TENANT_RUNTIME_BACKEND` names, with its gateway pointing at this process's LLM proxy
 * and platform API. Throws with the host's problems listed when the backend cannot run here (no root,
 * no bubblewrap, no Docker engine); main.ts reports that and serves without runtimes.
 */
type FetchApp = { fetch: (request: Request) => Response | Promise<Response> };

export async function createOrchestrator(
  config: PlatformConfig,
  {
    log,
    authSecret,
    apps,
  }: {
    log: Logger;
    authSecret: string;
    /**
     * This process's LLM proxy and platform API apps, served on each tenant's sockets with the tenant stamped
     * on every request (identity from the socket). Without them the sockets pipe to the TCP listeners.
     */
    apps?: { llmProxy: () => FetchApp; platformApi: () => FetchApp };
  },
): Promise<TenantOrchestrator | null> {
  if (config.TENANT_RUNTIME_BACKEND === 'none') return null;
  // Tenants connect to these through their gateway sockets; a wildcard listener is reached on loopback.
  const loopback = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  const gateway = new TenantGateway({
    rootDir: join(config.dataDir, 'gateways'),
    llmProxy: apps ? { app: apps.llmProxy } : { host: loopback(config.LLM_PROXY_HOST), port: config.LLM_PROXY_PORT },
    platformApi: apps
      ? { app: apps.platformApi }
      : { host: loopback(config.PLATFORM_API_HOST), port: config.PLATFORM_API_PORT },
    log: log.child({ component: 'egress' }),
  });
  const limits = configuredLimits(config);
  if (config.TENANT_RUNTIME_BACKEND === 'docker') {
    // The content-hash tag of this build: another build moving TENANT_IMAGE never swaps it under us.
    const image = await ensureTenantImage({ image: config.TENANT_IMAGE });
    return new DockerOrchestrator({
      tenantDataDir: config.tenantDataDir,
      gateway,
      image,
      limits,
      log: log.child({ component: 'orchestrator' }),
    });
  }
  return new SandboxOrchestrator({
    sandboxes: await createSandboxManager({
      stateDir: join(config.dataDir, 'sandboxes'),
      cgroupGroup: 'agentsquads-tenants',
      log: log.child({ component: 'sandbox' }),
    }),
    gateway,
    paths: { tenantDataDir: config.tenantDataDir, runtimeBundle: await ensureRuntimeBundle(), handsDir: HANDS_DIR },
    // What a restart needs (the tenant's API key) is sealed with a key derived from the platform's secret.
    secrets: createSecretBox(Buffer.from(authSecret, 'utf8'), 'tenant-runtime'),
    defaultLimits: limits,
    log: log.child({ component: 'orchestrator' }),
  });
}
