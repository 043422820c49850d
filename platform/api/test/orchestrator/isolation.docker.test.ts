import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { processesOfUid } from '@agentstack/sandbox';
import { dockerHarness } from './docker-env.js';
import { describeIsolation } from './isolation-suite.js';

/** The shared isolation suite against the Docker backend (the tenant image has bash, perl and procps). */
describeIsolation('docker', async () => {
  const h = await dockerHarness();
  const hits = { llm: 0, platform: 0 };
  h.servers.llm.on('request', () => hits.llm++);
  h.servers.platform.on('request', () => hits.platform++);
  const hostPaths = (tenantId: string) => [
    join(h.root, 'tenants', tenantId),
    join(h.root, 'tenants', tenantId, 'workspace'),
    join(h.root, 'gateways', tenantId),
  ];
  return {
    orchestrator: h.orchestrator,
    endpointHits: () => ({ ...hits }),
    hostPaths: async (tenantId) => hostPaths(tenantId),
    async traces(tenantId) {
      const inspected = await h.orchestrator.inspect(tenantId);
      const uid = Number(inspected?.Config.Labels['org.agentsquads.uid']);
      return async () => {
        const found: string[] = [];
        if (!Number.isInteger(uid)) found.push('the tenant had no container uid');
        else for (const pid of await processesOfUid(uid)) found.push(`process ${pid} of uid ${uid}`);
        const containers = await h.docker.listContainers({
          all: true,
          filters: { label: [`org.agentsquads.tenant=${tenantId}`] },
        });
        for (const c of containers) found.push(`container ${c.Id.slice(0, 12)} (${c.State})`);
        for (const path of hostPaths(tenantId)) if (existsSync(path)) found.push(path);
        return found;
      };
    },
    cleanup: () => h.cleanup(),
  };
});
