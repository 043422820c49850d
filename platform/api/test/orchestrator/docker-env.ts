import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newId } from '@agentstack/core';
import { processesOfUid, UidRegistry } from '@agentstack/sandbox';
import Docker from 'dockerode';
import { DockerOrchestrator, type DockerOrchestratorOptions } from '../../src/orchestrator/docker.js';
import { ensureTenantImage } from '../../src/orchestrator/docker-image.js';
import { TenantGateway } from '../../src/orchestrator/gateway.js';
import { startEndpoint } from './sandbox-backend.js';

export const quiet = { info() {}, warn() {} };

/** A Docker orchestrator on a private data dir and gateway, marked so cleanup removes exactly its containers. */
export async function dockerHarness(options: Partial<DockerOrchestratorOptions> = {}) {
  const image = await ensureTenantImage({ image: process.env.TENANT_IMAGE });
  const runId = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const root = mkdtempSync(join(tmpdir(), 'docker-orch-'));
  await chmod(root, 0o711);
  const llm = await startEndpoint('llm');
  const platform = await startEndpoint('platform');
  const gateway = new TenantGateway({
    rootDir: join(root, 'gateways'),
    llmProxy: { host: '127.0.0.1', port: llm.port },
    platformApi: { host: '127.0.0.1', port: platform.port },
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
    llm,
    platform,
    newTenantId: () => newId('ten'),
    /** Host paths of a tenant another tenant will try to reach. */
    hostPaths: (tenantId: string) => [
      join(root, 'tenants', tenantId),
      join(root, 'tenants', tenantId, 'workspace'),
      gateway.dirOf(tenantId),
    ],
    /** What of a tenant is on the host, listed again after destroy (see `IsolationTarget.traces`). */
    async traces(tenantId: string): Promise<() => Promise<string[]>> {
      const info = await orchestrator.inspect(tenantId);
      const uid = Number(info?.Config.Labels['org.agentsquads.uid']);
      const paths = this.hostPaths(tenantId);
      return async () => {
        const found: string[] = [];
        if (!info) return ['the tenant had no container'];
        for (const pid of await processesOfUid(uid)) found.push(`process ${pid} of uid ${uid}`);
        if (await new UidRegistry().owner(uid)) found.push(`uid ${uid} still reserved`);
        const left = await docker.listContainers({
          all: true,
          filters: { label: [`org.agentsquads.tenant=${tenantId}`] },
        });
        for (const c of left) found.push(`container ${c.Id}`);
        const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
        if (mounts.includes(info.Id)) found.push(`mounts of container ${info.Id}`);
        const merged = (info.GraphDriver?.Data as { MergedDir?: string } | undefined)?.MergedDir;
        if (merged && mounts.includes(merged)) found.push(`root fs of container ${info.Id} still mounted`);
        if (existsSync(`/sys/fs/cgroup/memory/docker/${info.Id}`)) found.push(`memory cgroup of ${info.Id}`);
        for (const path of paths) if (existsSync(path)) found.push(path);
        return found;
      };
    },
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
      await Promise.all([llm, platform].map((e) => new Promise((r) => e.server.close(r))));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** One HTTP request over a unix socket. */
export function viaSocket(socketPath: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
