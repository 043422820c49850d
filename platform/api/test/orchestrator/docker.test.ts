import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerHarness, viaSocket } from './docker-env.js';

type Harness = Awaited<ReturnType<typeof dockerHarness>>;

describe('DockerOrchestrator', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await dockerHarness();
  }, 600_000);
  afterAll(async () => {
    await h?.cleanup();
  });

  it('creates, starts a healthy runtime that answers through its socket, stops and destroys without a trace', async () => {
    const tenantId = h.newTenantId();
    const { orchestrator } = h;
    expect((await orchestrator.status(tenantId)).state).toBe('missing');
    const { runtimeId } = await orchestrator.create({ tenantId, apiKey: 'sk_test_key_1234567890' });
    expect(await orchestrator.create({ tenantId, apiKey: 'sk_test_key_1234567890' })).toEqual({ runtimeId });
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'stopped', runtimeId, healthy: false });

    const began = Date.now();
    await orchestrator.start(tenantId);
    const ms = Date.now() - began;
    expect(ms).toBeLessThan(30_000);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'running', backend: 'docker', healthy: true });

    const { socketPath, token } = await orchestrator.runtimeEndpoint(tenantId);
    const health = await viaSocket(socketPath, '/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, tenantId });
    expect((await viaSocket(socketPath, '/v1/hands')).status).toBe(401);
    expect((await viaSocket(socketPath, '/v1/hands', { authorization: `Bearer ${token}` })).status).toBe(200);

    const id = await orchestrator.exec(tenantId, ['sh', '-c', 'id -u; id -g; pwd; echo "[$PLATFORM_API_KEY]"']);
    const info = await h.docker.getContainer(runtimeId).inspect();
    const uid = Number(info.Config.Labels['org.agentsquads.uid']);
    expect(id).toMatchObject({ exitCode: 0, timedOut: false });
    expect(id.stdout.split('\n').slice(0, 4)).toEqual([String(uid), String(uid), '/workspace', '[]']);

    await orchestrator.writeWorkspaceFile(tenantId, 'uploads/a.txt', Buffer.from('hello'));
    const workspace = join(h.root, 'tenants', tenantId, 'workspace');
    expect(statSync(join(workspace, 'uploads/a.txt')).uid).toBe(uid);
    expect((await orchestrator.exec(tenantId, ['cat', 'uploads/a.txt'])).stdout).toBe('hello');
    await expect(orchestrator.writeWorkspaceFile(tenantId, '../escape.txt', Buffer.from('x'))).rejects.toThrow(
      /not a path inside/,
    );

    await orchestrator.stop(tenantId);
    expect((await orchestrator.status(tenantId)).state).toBe('stopped');
    await orchestrator.destroy(tenantId);
    await orchestrator.destroy(tenantId);
    expect((await orchestrator.status(tenantId)).state).toBe('missing');
    expect(existsSync(join(h.root, 'tenants', tenantId))).toBe(false);
    expect(existsSync(h.gateway.dirOf(tenantId))).toBe(false);
  });
});
