import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureRuntimeBundle, HANDS_DIR } from '@agentsquads/runtime/bundle';
import { createSecretBox } from '@agentstack/core';
import { processesOfUid } from '@agentstack/sandbox';
import { createTestSandboxManager } from '@agentstack/sandbox/testing';
import { TenantGateway } from '../../src/orchestrator/gateway.js';
import { SandboxOrchestrator } from '../../src/orchestrator/sandbox.js';
import type { TenantLimits } from '../../src/orchestrator/types.js';

const quiet = { info() {}, warn() {} };

/** A stand-in for one platform endpoint (LLM proxy or platform API) that says who it is and counts hits. */
export async function startEndpoint(
  name: string,
): Promise<{ server: Server; port: number; hits: () => number; lastAuth: () => string | undefined }> {
  let hits = 0;
  let lastAuth: string | undefined;
  const server = createServer((req, res) => {
    hits++;
    lastAuth = req.headers.authorization;
    res.end(`${name} saw ${req.method} ${req.url} auth=${req.headers.authorization ?? ''}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, hits: () => hits, lastAuth: () => lastAuth };
}

export interface SandboxBackend {
  orchestrator: SandboxOrchestrator;
  root: string;
  tenantDataDir: string;
  llm: Awaited<ReturnType<typeof startEndpoint>>;
  platform: Awaited<ReturnType<typeof startEndpoint>>;
  /** A second orchestrator over the same files (a restarted platform). */
  reopen(): SandboxOrchestrator;
  /** What of a tenant is on the host, listed again after destroy (see `IsolationTarget.traces`). */
  traces(tenantId: string): Promise<() => Promise<string[]>>;
  /** Host paths of a tenant: its directory, workspace, gateway, sandbox state and forward sockets. */
  hostPaths(tenantId: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

/** The sandbox backend over temporary directories, with real gateway sockets leading to stand-in endpoints. */
export async function createSandboxBackend(options: { limits?: TenantLimits } = {}): Promise<SandboxBackend> {
  const runtimeBundle = await ensureRuntimeBundle();
  const root = await mkdtemp(join(tmpdir(), 'orchestrator-sandbox-'));
  // Tenant uids must pass through to their workspace and gateway directories.
  await chmod(root, 0o711);
  const env = await createTestSandboxManager({ cgroupGroup: `agentsquads-test-${process.pid}` });
  const llm = await startEndpoint('llm');
  const platform = await startEndpoint('platform');
  const tenantDataDir = join(root, 'tenants');
  const master = new Uint8Array(32).fill(7);
  const make = () => {
    const gateway = new TenantGateway({
      rootDir: join(root, 'gateways'),
      llmProxy: { host: '127.0.0.1', port: llm.port },
      platformApi: { host: '127.0.0.1', port: platform.port },
      log: quiet,
    });
    return new SandboxOrchestrator({
      sandboxes: env.manager,
      gateway,
      paths: { tenantDataDir, runtimeBundle, handsDir: HANDS_DIR },
      secrets: createSecretBox(master, 'tenant-runtime'),
      log: quiet,
      ...(options.limits ? { defaultLimits: options.limits } : {}),
    });
  };
  const orchestrators: SandboxOrchestrator[] = [make()];
  const hostPaths = (tenantId: string) => {
    const sandboxDir = join(env.stateDir, 'sandboxes', tenantId);
    return [
      join(tenantDataDir, tenantId),
      join(tenantDataDir, tenantId, 'workspace'),
      join(root, 'gateways', tenantId),
      sandboxDir,
      join(sandboxDir, 'sock'),
      join(sandboxDir, 'data'),
    ];
  };
  return {
    orchestrator: orchestrators[0] as SandboxOrchestrator,
    root,
    tenantDataDir,
    llm,
    platform,
    reopen() {
      const again = make();
      orchestrators.push(again);
      return again;
    },
    async traces(tenantId) {
      const uid = (await env.manager.list()).find((info) => info.id === tenantId)?.uid;
      const paths = hostPaths(tenantId);
      return async () => {
        const found: string[] = [];
        if (uid !== undefined) {
          for (const pid of await processesOfUid(uid)) found.push(`process ${pid} of uid ${uid}`);
          if (await env.manager.registry.owner(uid)) found.push(`uid ${uid} still reserved`);
        } else found.push('the tenant had no sandbox uid');
        for (const name of await env.manager.cgroupsOnHost()) if (name === tenantId) found.push(`cgroup ${name}`);
        for (const path of paths) if (existsSync(path)) found.push(path);
        return found;
      };
    },
    hostPaths: async (tenantId) => hostPaths(tenantId),
    async cleanup() {
      for (const o of orchestrators) await o.close().catch(() => undefined);
      await env.cleanup();
      llm.server.close();
      platform.server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
