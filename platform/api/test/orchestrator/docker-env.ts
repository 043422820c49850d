import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newId } from '@agentstack/core';
import Docker from 'dockerode';
import { DockerOrchestrator, type DockerOrchestratorOptions } from '../../src/orchestrator/docker.js';
import { ensureTenantImage } from '../../src/orchestrator/docker-image.js';
import { TenantGateway } from '../../src/orchestrator/gateway.js';

export const quiet = { info() {}, warn() {} };

/** A Docker orchestrator on a private data dir and gateway, marked so cleanup removes exactly its containers. */
export async function dockerHarness(options: Partial<DockerOrchestratorOptions> = {}) {
  const image = await ensureTenantImage({ image: process.env.TENANT_IMAGE });
  const runId = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const root = mkdtempSync(join(tmpdir(), 'docker-orch-'));
  const llm = createServer((req, res) => res.end(`llm saw ${req.method} ${req.url}`));
  const platform = createServer((req, res) => res.end(`platform saw ${req.url}`));
  llm.listen(0, '127.0.0.1');
  platform.listen(0, '127.0.0.1');
  await Promise.all([once(llm, 'listening'), once(platform, 'listening')]);
  const gateway = new TenantGateway({
    rootDir: join(root, 'gateways'),
    llmProxy: { host: '127.0.0.1', port: (llm.address() as AddressInfo).port },
    platformApi: { host: '127.0.0.1', port: (platform.address() as AddressInfo).port },
    log: quiet,
  });
  const docker = new Docker();
  const orchestrator = new DockerOrchestrator({
    tenantDataDir: join(root, 'tenants'),
    gateway,
    log: quiet,
    docker,
    image,
    labels: { 'org.agentsquads.test': runId },
    namePrefix: `agentsquads-test-${runId}-`,
    ...options,
  });
  return {
    orchestrator,
    gateway,
    docker,
    root,
    runId,
    servers: { llm, platform },
    newTenantId: () => newId('ten'),
    async cleanup() {
      await orchestrator.close().catch(() => undefined);
      const mine = await docker.listContainers({ all: true, filters: { label: [`org.agentsquads.test=${runId}`] } });
      for (const c of mine) {
        const tenantId = c.Labels['org.agentsquads.tenant'];
        if (tenantId) await orchestrator.destroy(tenantId).catch(() => undefined);
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      }
      await gateway.closeAll();
      await Promise.all([llm, platform].map((s: Server) => new Promise((r) => s.close(r))));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** One HTTP request over a unix socket. */
export function viaSocket(socketPath: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath, path, headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
