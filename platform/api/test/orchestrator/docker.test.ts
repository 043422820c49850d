import { existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerOrchestrator } from '../../src/orchestrator/docker.js';
import { TenantGateway } from '../../src/orchestrator/gateway.js';
import { dockerHarness, quiet, viaSocket } from './docker-env.js';
import { describeIsolation } from './isolation-suite.js';

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
    await orchestrator.exec(tenantId, [
      'sh',
      '-c',
      'ln -s /etc link-out; ln -s /run/agentsquads link-run; ln -s /etc/hostname file-link',
    ]);
    for (const bad of [
      '../escape.txt',
      '/etc/passwd',
      'a/../../x',
      '',
      '.',
      'link-out/passwd',
      'link-run/evil',
      'file-link',
      'uploads',
    ]) {
      await expect(orchestrator.writeWorkspaceFile(tenantId, bad, Buffer.from('x')), bad).rejects.toMatchObject({
        status: 400,
      });
    }
    expect(existsSync(join(h.gateway.dirOf(tenantId), 'evil'))).toBe(false);

    // A new platform process (new orchestrator and gateway) finds the container running without its
    // gateway: not healthy until started, which restarts it on fresh sockets.
    const gateway2 = new TenantGateway({
      rootDir: join(h.root, 'gateways'),
      llmProxy: { host: '127.0.0.1', port: h.llm.port },
      platformApi: { host: '127.0.0.1', port: h.platform.port },
      log: quiet,
    });
    const restarted = new DockerOrchestrator({
      tenantDataDir: join(h.root, 'tenants'),
      gateway: gateway2,
      log: quiet,
      docker: h.docker,
      namePrefix: `agentsquads-test-${h.runId}-`,
    });
    expect(await restarted.status(tenantId)).toMatchObject({ state: 'running', healthy: false });
    await restarted.start(tenantId);
    expect(await restarted.status(tenantId)).toMatchObject({ state: 'running', healthy: true });
    const llmCall = await restarted.exec(tenantId, ['curl', '-s', '--noproxy', '*', 'http://127.0.0.1:8090/v1/models']);
    expect(llmCall.stdout).toMatch(/^llm saw GET \/v1\/models/);
    await gateway2.closeAll();
    await h.gateway.open(tenantId, { uid, gid: uid });
    await orchestrator.start(tenantId);

    // Created again (a new key): a new container on the same uid and workspace, stopped; a new runtime token.
    const again = await orchestrator.create({ tenantId, apiKey: 'sk_test_key_new_0987654321' });
    expect(again.runtimeId).not.toBe(runtimeId);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'stopped', runtimeId: again.runtimeId });
    await orchestrator.start(tenantId);
    const renewed = await orchestrator.runtimeEndpoint(tenantId);
    expect(renewed.token).not.toBe(token);
    expect((await viaSocket(socketPath, '/v1/hands', { authorization: `Bearer ${renewed.token}` })).status).toBe(200);
    expect((await orchestrator.exec(tenantId, ['sh', '-c', 'id -u; cat uploads/a.txt'])).stdout).toBe(`${uid}\nhello`);
    const env = (await orchestrator.inspect(tenantId))?.Config.Env ?? [];
    expect(env).toContain('PLATFORM_API_KEY=sk_test_key_new_0987654321');

    await orchestrator.stop(tenantId);
    expect((await orchestrator.status(tenantId)).state).toBe('stopped');
    await orchestrator.destroy(tenantId);
    await orchestrator.destroy(tenantId);
    expect((await orchestrator.status(tenantId)).state).toBe('missing');
    expect(existsSync(join(h.root, 'tenants', tenantId))).toBe(false);
    expect(existsSync(h.gateway.dirOf(tenantId))).toBe(false);
  });

  it('never follows a symlink the tenant puts in place of its runtime socket', async () => {
    const { orchestrator } = h;
    const tenantId = h.newTenantId();
    await orchestrator.create({ tenantId, apiKey: 'sk_test_key_1234567890' });
    await orchestrator.start(tenantId);
    const { socketPath, token } = await orchestrator.runtimeEndpoint(tenantId);
    // The platform's socket is root's, in the tenant's root-owned directory, not in the gateway directory.
    expect(socketPath).toBe(join(h.root, 'tenants', tenantId, 'runtime.sock'));
    const st = statSync(socketPath);
    expect([st.uid, st.mode & 0o777, statSync(dirname(socketPath)).uid]).toEqual([0, 0o600, 0]);
    // A host socket root could reach, and the tenant tries to point the platform at.
    let decoyHits = 0;
    const decoy = createServer((socket) => {
      decoyHits++;
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    const decoyPath = join(h.root, 'decoy.sock');
    await new Promise<void>((resolve) => decoy.listen(decoyPath, resolve));
    const swap = await orchestrator.exec(tenantId, [
      'sh',
      '-c',
      `mv /run/agentsquads/runtime.sock /run/agentsquads/real.sock && ln -s ${decoyPath} /run/agentsquads/runtime.sock && echo swapped`,
    ]);
    expect(swap.stdout).toBe('swapped\n');
    await expect(viaSocket(socketPath, '/v1/hands', { authorization: `Bearer ${token}` })).rejects.toThrow();
    expect((await orchestrator.status(tenantId)).healthy).toBe(false);
    expect(decoyHits).toBe(0);
    decoy.close();
    // A restart brings it back on a fresh gateway directory.
    await orchestrator.stop(tenantId);
    await orchestrator.start(tenantId);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'running', healthy: true });
    await orchestrator.destroy(tenantId);
  });

  it('reports a crashed runtime as an error and starts it again; refuses one that never becomes healthy', async () => {
    const { orchestrator } = h;
    const tenantId = h.newTenantId();
    await orchestrator.create({ tenantId, apiKey: 'sk_test_key_1234567890', limits: { cpus: 0.25, pids: 100 } });
    await expect(orchestrator.exec(tenantId, ['true'])).rejects.toMatchObject({
      code: 'runtime_not_running',
      status: 409,
    });
    await expect(orchestrator.openTerminal(tenantId, { cols: 80, rows: 24 })).rejects.toMatchObject({ status: 409 });
    const limits = (await orchestrator.inspect(tenantId))?.HostConfig;
    expect(limits).toMatchObject({
      NanoCpus: 250_000_000,
      PidsLimit: 100,
      Memory: 512 * 2 ** 20,
      ReadonlyRootfs: true,
    });
    await orchestrator.start(tenantId);
    await orchestrator
      .exec(tenantId, ['sh', '-c', 'kill -9 "$(pgrep -f agentsquads-runtime.mjs | head -1)"'])
      .catch(() => undefined);
    for (let i = 0; i < 100 && (await orchestrator.status(tenantId)).state !== 'error'; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await orchestrator.status(tenantId)).toMatchObject({
      state: 'error',
      message: expect.stringMatching(/exited with code 137/),
    });
    await Promise.all([orchestrator.start(tenantId), orchestrator.start(tenantId)]);
    expect(await orchestrator.status(tenantId)).toMatchObject({ state: 'running', healthy: true });
    await orchestrator.destroy(tenantId);

    const broken = h.newTenantId();
    await orchestrator.create({
      tenantId: broken,
      apiKey: 'sk_test_key_1234567890',
      env: { RUNTIME_DEFAULT_HAND: 'no-such-hand' },
    });
    await expect(orchestrator.start(broken, { timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'runtime_start_failed',
      message: expect.stringMatching(/exited before it was healthy \(code 1\): .*no-such-hand/s),
    });
    expect((await orchestrator.status(broken)).state).not.toBe('running');
    await orchestrator.destroy(broken);
    await expect(orchestrator.create({ tenantId: '../etc', apiKey: 'x' })).rejects.toThrow(/not a tenant id/);
    await expect(orchestrator.status('ten_../../x')).rejects.toThrow(/not a tenant id/);
  });
});

/**
 * What the shared isolation suite (below) does not cover: the container's own walls (read-only root, tmpfs
 * /tmp, only loopback, Docker's bridge unreachable, the seccomp profile on the container), exec timeouts,
 * the terminal. Isolation between tenants and from the host is the suite's.
 */
describe('DockerOrchestrator: the container', () => {
  let h: Harness;
  let a: string;

  beforeAll(async () => {
    h = await dockerHarness();
    a = h.newTenantId();
    await h.orchestrator.create({ tenantId: a, apiKey: 'sk_a_0123456789abcdef' });
    await h.orchestrator.start(a);
  }, 600_000);
  afterAll(async () => {
    await h?.cleanup();
  });

  it('has a read-only root, a small tmpfs /tmp, only loopback, and no way to Docker’s bridge', async () => {
    const info = await h.orchestrator.inspect(a);
    expect(info?.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      NetworkMode: 'none',
      Init: true,
      Memory: 512 * 2 ** 20,
      NanoCpus: 500_000_000,
      PidsLimit: 256,
    });
    expect(info?.HostConfig.SecurityOpt?.[0]).toBe('no-new-privileges');
    expect(info?.HostConfig.SecurityOpt?.[1]).toMatch(/^seccomp=\{"defaultAction":"SCMP_ACT_ALLOW"/);
    const r = await h.orchestrator.exec(a, [
      'bash',
      '-c',
      [
        'touch /usr/x /etc/x / 2>&1 | grep -c "Read-only file system"',
        'touch /tmp/ok && echo tmp=ok',
        'df -k /tmp | tail -1 | awk "{print \\"tmpsize=\\" \\$2}"',
        'ls /sys/class/net | tr "\\n" " "; echo',
        'timeout 3 bash -c "exec 3<>/dev/tcp/172.17.0.1/2375" 2>/dev/null && echo bridge=open || echo bridge=closed',
      ].join('\n'),
    ]);
    expect(r.stdout.trim().split('\n')).toEqual(['3', 'tmp=ok', 'tmpsize=65536', 'lo ', 'bridge=closed']);
  });

  it('times out a command, killing its whole process group', async () => {
    const began = Date.now();
    const r = await h.orchestrator.exec(a, ['sh', '-c', 'sleep 30 & sleep 30'], { timeoutMs: 1_000 });
    expect(r.timedOut).toBe(true);
    expect(Date.now() - began).toBeLessThan(10_000);
    const left = await h.orchestrator.exec(a, ['ps', '-eo', 'comm', '--no-headers']);
    expect(left.stdout).not.toContain('sleep');
    expect(await h.orchestrator.exec(a, ['sh', '-c', 'exit 7'])).toMatchObject({ exitCode: 7, timedOut: false });
  });

  it('opens a terminal in tmux session main as the tenant, resizes it; the session survives the terminal', async () => {
    const term = await h.orchestrator.openTerminal(a, { cols: 100, rows: 30 });
    let seen = '';
    term.stream.on('data', (c: Buffer) => {
      seen += c.toString('utf8');
    });
    term.stream.write('echo "$(id -u) $(pwd) cols=$(tput cols) $((6*7))"\r');
    const uid = (await h.orchestrator.inspect(a))?.Config.Labels['org.agentsquads.uid'];
    for (let i = 0; i < 200 && !seen.includes(`${uid} /workspace cols=100 42`); i++) await sleep(50);
    expect(seen).toContain(`${uid} /workspace cols=100 42`);
    term.resize(120, 40);
    await sleep(300);
    const size = await h.orchestrator.exec(a, ['tmux', 'list-sessions', '-F', '#{session_name} #{window_width}']);
    expect(size.stdout).toBe('main 120\n');
    await term.close();
    await sleep(200);
    expect((await h.orchestrator.exec(a, ['tmux', 'ls'])).stdout).toMatch(/^main: /);
    const again = await h.orchestrator.openTerminal(a, { cols: 80, rows: 24 });
    let second = '';
    again.stream.on('data', (c: Buffer) => {
      second += c.toString('utf8');
    });
    for (let i = 0; i < 200 && !second.includes('42'); i++) await sleep(50);
    expect(second).toContain('42');
    await again.close();
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeIsolation('docker', async () => {
  const harness = await dockerHarness();
  return {
    orchestrator: harness.orchestrator,
    endpointHits: () => ({ llm: harness.llm.hits(), platform: harness.platform.hits() }),
    traces: (tenantId) => harness.traces(tenantId),
    hostPaths: async (tenantId) => harness.hostPaths(tenantId),
    cleanup: () => harness.cleanup(),
  };
});
