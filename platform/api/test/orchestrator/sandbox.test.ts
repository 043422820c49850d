import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newId } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestOverSocket } from '../../src/orchestrator/health.js';
import { describeIsolation } from './isolation-suite.js';
import { createSandboxBackend, type SandboxBackend } from './sandbox-backend.js';

let backend: SandboxBackend;
const apiKey = `sk_test_${'k'.repeat(40)}`;

beforeAll(async () => {
  backend = await createSandboxBackend();
});
afterAll(async () => {
  await backend?.cleanup();
});

describe('SandboxOrchestrator', () => {
  it('creates a tenant runtime and starts it healthy over its socket, well under 10 s', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    const t0 = Date.now();
    const { runtimeId } = await orchestrator.create({ tenantId, apiKey });
    const t1 = Date.now();
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'stopped', runtimeId, healthy: false });
    await orchestrator.start(tenantId);
    const t2 = Date.now();
    console.log(`create ${t1 - t0} ms, start→healthy ${t2 - t1} ms`);
    expect(t2 - t1).toBeLessThan(10_000);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'running', healthy: true, backend: 'sandbox' });

    const { socketPath, token } = await orchestrator.runtimeEndpoint(tenantId);
    // The host side of the socket lies in a directory only root can enter.
    expect(statSync(join(socketPath, '..')).mode & 0o777).toBe(0o700);
    const health = await requestOverSocket(socketPath, '/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, tenantId });
    expect((await requestOverSocket(socketPath, '/v1/hands')).status).toBe(401);
    const hands = await requestOverSocket(socketPath, '/v1/hands', { headers: { authorization: `Bearer ${token}` } });
    expect(hands.status).toBe(200);
    expect(JSON.parse(hands.body).hands.map((h: { name: string }) => h.name)).toContain('assistant');

    // Idempotent create: same runtime, still running.
    expect(await orchestrator.create({ tenantId, apiKey })).toEqual({ runtimeId });
    await orchestrator.stop(tenantId);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'stopped', healthy: false });
    await expect(orchestrator.runtimeEndpoint(tenantId)).rejects.toMatchObject({ code: 'runtime_not_running' });
    await orchestrator.destroy(tenantId);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'missing', runtimeId: null });
  });

  it('runs commands as the tenant in /workspace with the gateway environment, and the runtime reaches its endpoints', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    await orchestrator.create({ tenantId, apiKey });
    await orchestrator.start(tenantId);
    const result = await orchestrator.exec(tenantId, [
      '/bin/bash',
      '-c',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template.
      'id -u; pwd; echo "$HTTP_PROXY $WORKSPACE_DIR"; echo "key=${PLATFORM_API_KEY:-none} token=${RUNTIME_AUTH_TOKEN:-none}"; curl -s http://127.0.0.1:8090/v1/models -H "authorization: Bearer x"; echo; curl -s http://127.0.0.1:3001/api/me',
    ]);
    const [uid, cwd, env, secrets, llm, platform] = result.stdout.trim().split('\n');
    expect(Number(uid)).toBeGreaterThanOrEqual(2_000_000);
    expect(cwd).toBe('/workspace');
    expect(env).toBe('http://127.0.0.1:3128 /workspace');
    // exec'd commands never see the runtime's secrets.
    expect(secrets).toBe('key=none token=none');
    expect(llm).toBe('llm saw GET /v1/models auth=Bearer x');
    expect(platform).toBe('platform saw GET /api/me auth=');
    await orchestrator.destroy(tenantId);
  });

  it('keeps the API key only sealed on disk and starts again after a platform restart', async () => {
    const tenantId = newId('ten');
    await backend.orchestrator.create({ tenantId, apiKey, env: { RUNTIME_DEFAULT_MODEL: 'demo' } });
    await backend.orchestrator.start(tenantId);
    const first = await backend.orchestrator.runtimeEndpoint(tenantId);
    // Nothing the platform wrote holds the key or the token in plaintext.
    const files: string[] = [];
    const walk = async (dir: string) => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.isFile()) files.push(path);
      }
    };
    await walk(backend.root);
    for (const file of files) {
      const text = await readFile(file, 'utf8').catch(() => '');
      expect(text.includes(apiKey), file).toBe(false);
      expect(text.includes(first.token), file).toBe(false);
    }
    const record = JSON.parse(readFileSync(join(backend.tenantDataDir, tenantId, 'runtime.json'), 'utf8'));
    expect(record.sealed).toMatch(/^v1\./);
    expect(statSync(join(backend.tenantDataDir, tenantId, 'runtime.json')).mode & 0o777).toBe(0o600);

    // The platform goes away (its sandboxes with it); a new one finds the tenant and starts it.
    await backend.orchestrator.close();
    const again = backend.reopen();
    expect(await again.status(tenantId)).toMatchObject({ state: 'stopped' });
    await again.start(tenantId);
    expect(await again.status(tenantId)).toMatchObject({ state: 'running', healthy: true });
    const second = await again.runtimeEndpoint(tenantId);
    expect(second.token).not.toBe(first.token);
    const env = await again.exec(tenantId, [
      '/bin/sh',
      '-c',
      'tr "\\0" "\\n" < /proc/$(pgrep -f agentsquads-runtime.mjs | head -1)/environ',
    ]);
    expect(env.stdout).toContain(`PLATFORM_API_KEY=${apiKey}`);
    expect(env.stdout).toContain('RUNTIME_DEFAULT_MODEL=demo');
    await again.destroy(tenantId);
    expect(existsSync(join(backend.tenantDataDir, tenantId))).toBe(false);
  });
});

describeIsolation('sandbox (bubblewrap)', async () => {
  const isolated = await createSandboxBackend();
  return {
    orchestrator: isolated.orchestrator,
    endpointHits: () => ({ llm: isolated.llm.hits(), platform: isolated.platform.hits() }),
    traces: (tenantId) => isolated.traces(tenantId),
    hostPaths: (tenantId) => isolated.hostPaths(tenantId),
    cleanup: () => isolated.cleanup(),
  };
});
