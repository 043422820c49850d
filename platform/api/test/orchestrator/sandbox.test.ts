import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { newId, waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestOverSocket } from '../../src/orchestrator/health.js';
import { describeIsolation, REQ } from './isolation-suite.js';
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

    // Create again (a new key): same runtime and workspace, stopped, and started with the new key.
    await orchestrator.writeWorkspaceFile(tenantId, 'kept.txt', new TextEncoder().encode('kept\n'));
    expect(await orchestrator.create({ tenantId, apiKey: `${apiKey}-2` })).toEqual({ runtimeId });
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'stopped' });
    await orchestrator.start(tenantId);
    const env = await orchestrator.exec(tenantId, [
      '/bin/sh',
      '-c',
      'cat kept.txt; tr "\\0" "\\n" < /proc/$(pgrep -f agentsquads-runtime.mjs | head -1)/environ | grep PLATFORM_API_KEY',
    ]);
    expect(env.stdout).toBe(`kept\nPLATFORM_API_KEY=${apiKey}-2\n`);
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
      `id -u; pwd; echo "$HTTP_PROXY $WORKSPACE_DIR"; echo "key=\${PLATFORM_API_KEY:-none} token=\${RUNTIME_AUTH_TOKEN:-none}"\n${REQ}\nreq llm 127.0.0.1 8090 GET /v1/models 'authorization: Bearer x'\nreq platform 127.0.0.1 3001 GET /api/me`,
    ]);
    const [uid, cwd, env, secrets, llm, platform] = result.stdout.trim().split('\n');
    expect(Number(uid)).toBeGreaterThanOrEqual(2_000_000);
    expect(cwd).toBe('/workspace');
    expect(env).toBe('http://127.0.0.1:3128 /workspace');
    // exec'd commands never see the runtime's secrets.
    expect(secrets).toBe('key=none token=none');
    expect(llm).toBe('llm=200');
    expect(platform).toBe('platform=200');
    expect(backend.llm.lastAuth()).toBe('Bearer x');
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

describe('SandboxOrchestrator: terminal, limits, crashes', () => {
  it('opens a tmux terminal as the tenant in /workspace; resizes; the session survives a closed terminal', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    await orchestrator.create({ tenantId, apiKey });
    await expect(orchestrator.openTerminal(tenantId, { cols: 80, rows: 24 })).rejects.toMatchObject({
      code: 'runtime_not_running',
    });
    await expect(orchestrator.exec(tenantId, ['true'])).rejects.toMatchObject({ status: 409 });
    await orchestrator.start(tenantId);
    await expect(orchestrator.openTerminal(tenantId, { cols: 0, rows: 30 })).rejects.toMatchObject({
      status: 400,
      field: 'cols',
    });
    const terminal = await orchestrator.openTerminal(tenantId, { cols: 100, rows: 30 });
    let screen = '';
    terminal.stream.on('data', (chunk: Buffer) => {
      screen += chunk.toString();
    });
    await waitFor(() => screen.includes('$ '), { what: 'a prompt', timeoutMs: 20_000 });
    terminal.stream.write('echo "$(id -u) $(pwd) cols=$(tput cols) $((6*7))"\r');
    await waitFor(() => /\d+ \/workspace cols=100 42/.test(screen), { what: 'output', timeoutMs: 10_000 });
    terminal.resize(120, 40);
    await waitFor(
      async () => {
        terminal.stream.write('tput cols\r');
        await new Promise((r) => setTimeout(r, 200));
        return screen.includes('\n120');
      },
      { what: 'the new width', timeoutMs: 10_000 },
    );
    await terminal.close();
    expect((await orchestrator.exec(tenantId, ['tmux', 'ls'])).stdout).toMatch(/^main: /);
    // A second terminal attaches to the same session.
    const again = await orchestrator.openTerminal(tenantId, { cols: 80, rows: 24 });
    let second = '';
    again.stream.on('data', (chunk: Buffer) => {
      second += chunk.toString();
    });
    await waitFor(() => second.includes('42'), { what: 'the earlier output in the session', timeoutMs: 10_000 });
    // Dropping the stream ends the terminal too (nothing but the tmux server remains).
    again.stream.destroy();
    await waitFor(async () => !(await orchestrator.exec(tenantId, ['pgrep', '-x', 'script'])).stdout.trim(), {
      what: 'the terminal to end',
    });
    await orchestrator.destroy(tenantId);
  });

  it('applies per-tenant limits', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    await orchestrator.create({ tenantId, apiKey, limits: { memoryBytes: 256 * 1024 * 1024, pids: 64 } });
    await orchestrator.start(tenantId);
    const fork = await orchestrator.exec(tenantId, [
      'perl',
      '-e',
      'my ($n, @k) = (0); while ($n < 500) { my $p = fork(); last unless defined $p; if (!$p) { sleep 30; exit } push @k, $p; $n++ } print $n; kill 9, @k',
    ]);
    expect(Number(fork.stdout)).toBeGreaterThan(10);
    expect(Number(fork.stdout)).toBeLessThan(64);
    const rss = await orchestrator.exec(tenantId, [
      '/bin/sh',
      '-c',
      'ps -o rss= -p "$(pgrep -f agentsquads-runtime.mjs | head -1)"',
    ]);
    console.log(`runtime RSS idle: ${Math.round(Number(rss.stdout.trim()) / 1024)} MiB`);
    const bomb = await orchestrator.exec(tenantId, ['perl', '-e', '$x = "x" x (300 * 1024 * 1024); print "survived"'], {
      timeoutMs: 60_000,
    });
    expect(bomb.stdout).not.toContain('survived');
    expect((await orchestrator.status(tenantId)).healthy).toBe(true);
    await orchestrator.destroy(tenantId);
  });

  it('reports a crashed runtime as an error and starts it again', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    await orchestrator.create({ tenantId, apiKey });
    await orchestrator.start(tenantId);
    // The sandbox ends with its runtime, possibly before this command can report back.
    await orchestrator
      .exec(tenantId, ['/bin/sh', '-c', 'kill -9 "$(pgrep -f agentsquads-runtime.mjs | head -1)"'])
      .catch(() => undefined);
    await waitFor(async () => (await orchestrator.status(tenantId)).state === 'error', {
      what: 'the error state',
      timeoutMs: 15_000,
    });
    expect((await orchestrator.status(tenantId)).message).toMatch(/exited/);
    await orchestrator.start(tenantId);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'running', healthy: true });
    // Starting a running, healthy runtime is a no-op; concurrent starts are serialised.
    await Promise.all([orchestrator.start(tenantId), orchestrator.start(tenantId)]);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'running', healthy: true });
    await orchestrator.destroy(tenantId);
  });

  it('refuses a runtime that does not become healthy, with its reason, and leaves it stopped', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    // A Hand that does not exist stops the runtime at start.
    await orchestrator.create({ tenantId, apiKey, env: { RUNTIME_DEFAULT_HAND: 'no-such-hand' } });
    await expect(orchestrator.start(tenantId, { timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'runtime_start_failed',
      message: expect.stringMatching(/exited before it was healthy/),
    });
    expect((await orchestrator.status(tenantId)).state).not.toBe('running');
    await orchestrator.destroy(tenantId);
  });

  it('writes a 10 MiB upload into the workspace, running or stopped, byte for byte', async () => {
    const { orchestrator } = backend;
    const tenantId = newId('ten');
    await orchestrator.create({ tenantId, apiKey });
    const data = randomBytes(10 * 1024 * 1024);
    const digest = createHash('sha256').update(data).digest('hex');
    await orchestrator.writeWorkspaceFile(tenantId, 'uploads/stopped.bin', data);
    await orchestrator.start(tenantId);
    const t0 = Date.now();
    await orchestrator.writeWorkspaceFile(tenantId, 'uploads/running.bin', data);
    console.log(`10 MiB written inside a running sandbox in ${Date.now() - t0} ms`);
    const sums = await orchestrator.exec(tenantId, ['/bin/sh', '-c', 'sha256sum uploads/*.bin | cut -c1-64']);
    expect(sums.stdout).toBe(`${digest}\n${digest}\n`);
    await orchestrator.destroy(tenantId);
  });

  it("a tenant cannot point the platform's connection to its runtime elsewhere (symlink swap of runtime.sock)", async () => {
    const { orchestrator } = backend;
    const [a, b] = [newId('ten'), newId('ten')];
    for (const t of [a, b]) {
      await orchestrator.create({ tenantId: t, apiKey });
      await orchestrator.start(t);
    }
    // A replaces its runtime.sock with a link to B's (the host path of B's gateway is easy to guess).
    const bSocket = join(backend.root, 'gateways', b, 'runtime.sock');
    expect(existsSync(bSocket)).toBe(true);
    await orchestrator.exec(a, [
      '/bin/sh',
      '-c',
      `mv /run/agentsquads/runtime.sock /run/agentsquads/real.sock && ln -s ${bSocket} /run/agentsquads/runtime.sock`,
    ]);
    // A fresh connection (no pooled keep-alive) to A's endpoint never reaches B: the link is followed
    // inside A's sandbox, as A, where B's path does not exist.
    const { socketPath } = await orchestrator.runtimeEndpoint(a);
    const answer = await new Promise<string>((resolve) => {
      const req = request({ socketPath, path: '/health', agent: false, timeout: 10_000 }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on('end', () => resolve(body));
      });
      req.on('error', (err) => resolve(`error: ${err.message}`));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
    expect(answer).not.toContain(b);
    expect(answer).toMatch(/^error/);
    expect((await orchestrator.status(a)).healthy).toBe(false);
    expect((await orchestrator.status(b)).healthy).toBe(true);
    for (const t of [a, b]) await orchestrator.destroy(t);
  });

  it('refuses tenant ids that are not ids', async () => {
    await expect(backend.orchestrator.create({ tenantId: '../etc', apiKey })).rejects.toThrow(/not a tenant id/);
    await expect(backend.orchestrator.status('ten_../../x')).rejects.toThrow(/not a tenant id/);
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
