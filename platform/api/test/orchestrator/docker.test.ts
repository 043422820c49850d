import { once } from 'node:events';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { testDatabaseAdminUrl } from '@agentstack/db/testing';
import { processesOfUid, UidRegistry } from '@agentstack/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerOrchestrator } from '../../src/orchestrator/docker.js';
import { TenantGateway } from '../../src/orchestrator/gateway.js';
import { dockerHarness, quiet, viaSocket } from './docker-env.js';

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
      llmProxy: { host: '127.0.0.1', port: (h.servers.llm.address() as AddressInfo).port },
      platformApi: { host: '127.0.0.1', port: (h.servers.platform.address() as AddressInfo).port },
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
    expect(llmCall.stdout).toBe('llm saw GET /v1/models');
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

/** A python probe run inside a tenant: TCP connects to each target, printing `host:port ok|<error>`. */
const CONNECT_PROBE = `
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(':', 1)
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    s.settimeout(2)
    try:
        s.connect((host, int(port)))
        print(target, 'ok')
    except Exception as e:
        print(target, type(e).__name__)
    finally:
        s.close()
`;

describe('DockerOrchestrator isolation', () => {
  let h: Harness;
  let a: string;
  let b: string;
  const hostHttp = createServer((_req, res) => res.end('host service'));
  const uidOf = async (tenantId: string) =>
    Number((await h.orchestrator.inspect(tenantId))?.Config.Labels['org.agentsquads.uid']);

  beforeAll(async () => {
    h = await dockerHarness();
    hostHttp.listen(0, '0.0.0.0');
    await once(hostHttp, 'listening');
    a = h.newTenantId();
    b = h.newTenantId();
    await h.orchestrator.create({
      tenantId: a,
      apiKey: 'sk_a_0123456789abcdef',
      limits: { memoryBytes: 256 * 2 ** 20, pids: 64 },
    });
    await h.orchestrator.create({ tenantId: b, apiKey: 'sk_b_0123456789abcdef' });
    await Promise.all([h.orchestrator.start(a), h.orchestrator.start(b)]);
    writeFileSync(join(h.root, 'tenants', b, 'workspace', 'secret-b.txt'), 'b only');
  }, 600_000);
  afterAll(async () => {
    await h?.cleanup();
    hostHttp.close();
  });

  it('runs as its own uid with no capabilities, no_new_privs and seccomp on a read-only root', async () => {
    const r = await h.orchestrator.exec(a, [
      'sh',
      '-c',
      'grep -E "^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; touch /usr/x 2>&1; touch /tmp/ok && echo tmp-ok',
    ]);
    const uid = await uidOf(a);
    expect(r.stdout).toMatch(new RegExp(`Uid:\\s+${uid}\\s+${uid}`));
    expect(r.stdout).toMatch(/CapEff:\s+0000000000000000/);
    expect(r.stdout).toMatch(/CapBnd:\s+0000000000000000/);
    expect(r.stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(r.stdout).toMatch(/Seccomp:\s+2/);
    expect(r.stdout).toMatch(/Read-only file system/);
    expect(r.stdout).toMatch(/tmp-ok/);
    expect(uid).not.toBe(await uidOf(b));
  });

  it("cannot read or write another tenant's workspace, nor reach its runtime", async () => {
    const bWorkspace = join(h.root, 'tenants', b, 'workspace');
    const bSocket = (await h.orchestrator.runtimeEndpoint(b)).socketPath;
    const r = await h.orchestrator.exec(a, [
      'sh',
      '-c',
      `cat ${bWorkspace}/secret-b.txt; echo x > ${bWorkspace}/from-a.txt; ls /run/agentsquads; find / -xdev -name secret-b.txt 2>/dev/null; python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('${bSocket}')"`,
    ]);
    expect(r.stdout).not.toContain('b only');
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([
      'egress.sock',
      'llm.sock',
      'platform.sock',
      'runtime.sock',
    ]);
    expect(r.stderr).toMatch(/No such file or directory/);
    expect(r.stderr).toMatch(/FileNotFoundError/);
    expect(existsSync(join(bWorkspace, 'from-a.txt'))).toBe(false);
    // B's runtime listens only on its own socket; A's loopback is A's alone.
    const probe = await h.orchestrator.exec(a, ['python3', '-c', CONNECT_PROBE, '127.0.0.1:4200']);
    expect(probe.stdout.trim()).toBe('127.0.0.1:4200 ConnectionRefusedError');
  });

  it('cannot reach the host: PostgreSQL, an HTTP server, its non-loopback addresses', async () => {
    const pg = new URL(testDatabaseAdminUrl());
    const httpPort = (hostHttp.address() as AddressInfo).port;
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && !i.internal && i.family === 'IPv4')
      .map((i) => i!.address);
    expect(hostAddresses.length).toBeGreaterThan(0);
    const targets = [
      `127.0.0.1:${pg.port}`,
      `127.0.0.1:${httpPort}`,
      ...hostAddresses.flatMap((ip) => [`${ip}:${pg.port}`, `${ip}:${httpPort}`]),
      '172.17.0.1:80',
    ];
    const r = await h.orchestrator.exec(a, ['python3', '-c', CONNECT_PROBE, ...targets]);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(targets.length);
    for (const line of lines) expect(line).not.toMatch(/ ok$/);
    // Only loopback exists inside.
    const links = await h.orchestrator.exec(a, ['cat', '/proc/net/dev']);
    expect(links.stdout).toMatch(/lo:/);
    expect(links.stdout).not.toMatch(/eth0|docker0/);
  });

  it('reaches the LLM proxy and platform through its bridges, and only public addresses through the egress proxy', async () => {
    const hostIp = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4')!.address;
    const httpPort = (hostHttp.address() as AddressInfo).port;
    const script = `
import urllib.request, sys
for url in sys.argv[1:]:
    try:
        print(url, urllib.request.urlopen(url, timeout=5).read().decode())
    except urllib.error.HTTPError as e:
        print(url, e.code)
    except Exception as e:
        print(url, type(e).__name__)
`;
    const r = await h.orchestrator.exec(a, [
      'python3',
      '-c',
      script,
      'http://127.0.0.1:8090/v1/models',
      'http://127.0.0.1:3001/api/health',
      `http://${hostIp}:${httpPort}/`,
      `http://127.0.0.1:${httpPort}/`,
      'http://10.0.0.1/',
      'http://169.254.169.254/latest/meta-data/',
    ]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('http://127.0.0.1:8090/v1/models llm saw GET /v1/models');
    expect(lines[1]).toBe('http://127.0.0.1:3001/api/health platform saw /api/health');
    const [viaHostIp, viaLoopback, ...private_] = lines.slice(2);
    expect(viaHostIp).toMatch(/ 403$/);
    // Loopback is reached directly (NO_PROXY): in the tenant's own network namespace nothing of the host listens.
    expect(viaLoopback).toMatch(/ (403|URLError)$/);
    for (const line of private_) expect(line).toMatch(/ 403$/);
  });

  it('sees none of the host processes', async () => {
    const r = await h.orchestrator.exec(a, ['ps', '-eo', 'pid,uid,comm', '--no-headers']);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    const uid = String(await uidOf(a));
    expect(rows.every(([, u]) => u === uid)).toBe(true);
    expect(rows.map(([, , comm]) => comm)).toEqual(expect.arrayContaining(['docker-init', 'node', 'ps']));
    expect(rows.length).toBeLessThan(8);
    expect(existsSync(`/proc/${process.pid}`)).toBe(true);
    const mine = await h.orchestrator.exec(a, [
      'sh',
      '-c',
      `cat /proc/${process.pid}/cmdline 2>/dev/null | tr '\\0' ' '`,
    ]);
    expect(mine.stdout).not.toContain('vitest');
  });

  it('refuses ptrace, mount and new user namespaces', async () => {
    const script = `
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(ret):
    return 'ok' if ret == 0 else os.strerror(ctypes.get_errno())
child = subprocess.Popen(['sleep', '5'])
print('ptrace', errno_of(libc.ptrace(16, child.pid, None, None)))
print('mount', errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))
print('unshare', errno_of(libc.unshare(0x10000000)))
child.kill()
`;
    const r = await h.orchestrator.exec(a, ['python3', '-c', script]);
    expect(r.stdout.trim().split('\n')).toEqual([
      'ptrace Operation not permitted',
      'mount Operation not permitted',
      'unshare Operation not permitted',
    ]);
    const cli = await h.orchestrator.exec(a, ['unshare', '-U', 'true']);
    expect(cli.exitCode).not.toBe(0);
    expect(cli.stderr).toMatch(/Operation not permitted/);
  });

  it('a fork bomb stops at the pids limit; a memory bomb is killed; the other tenant never notices', async () => {
    const fork = `
import os, time, signal
children = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except OSError as e:
    print(len(children), e.errno)
for pid in children:
    os.kill(pid, signal.SIGKILL)
`;
    const f = await h.orchestrator.exec(a, ['python3', '-c', fork], { timeoutMs: 60_000 });
    const [forked, errno] = f.stdout.trim().split(' ').map(Number);
    expect(errno).toBe(11); // EAGAIN: the pids cgroup said no
    expect(forked).toBeLessThan(64);
    expect(forked).toBeGreaterThan(40);

    const bomb = await h.orchestrator.exec(
      a,
      ['python3', '-c', 'a = []\nwhile True: a.append(bytearray(16 * 2**20))'],
      { timeoutMs: 60_000 },
    );
    expect(bomb.exitCode).toBe(137);
    expect(await h.orchestrator.status(a)).toMatchObject({ state: 'running', healthy: true });
    const bStatus = await h.orchestrator.status(b);
    expect(bStatus).toMatchObject({ state: 'running', healthy: true });
    const still = await h.orchestrator.exec(b, ['cat', 'secret-b.txt']);
    expect(still.stdout).toBe('b only');
  });

  it('times out a command, killing it', async () => {
    const began = Date.now();
    const r = await h.orchestrator.exec(a, ['sh', '-c', 'sleep 30 & sleep 30'], { timeoutMs: 1_000 });
    expect(r.timedOut).toBe(true);
    expect(Date.now() - began).toBeLessThan(10_000);
    const left = await h.orchestrator.exec(a, ['ps', '-eo', 'comm', '--no-headers']);
    expect(left.stdout).not.toContain('sleep');
  });

  it('opens a terminal in tmux session main and resizes it', async () => {
    const term = await h.orchestrator.openTerminal(a, { cols: 100, rows: 30 });
    let seen = '';
    term.stream.on('data', (c: Buffer) => (seen += c.toString('utf8')));
    term.stream.write('echo "cols=$(tput cols) $((6*7))"\r');
    for (let i = 0; i < 100 && !seen.includes('cols=100 42'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(seen).toContain('cols=100 42');
    term.resize(120, 40);
    await new Promise((r) => setTimeout(r, 300));
    const sessions = await h.orchestrator.exec(a, [
      'tmux',
      'list-sessions',
      '-F',
      '#{session_name} #{window_width}x#{window_height}',
    ]);
    expect(sessions.stdout).toMatch(/^main 120x\d+/);
    await term.close();
  });

  it('refuses to write through a symlink while stopped, and leaves nothing behind on destroy', async () => {
    const c = h.newTenantId();
    await h.orchestrator.create({ tenantId: c, apiKey: 'sk_c_0123456789abcdef' });
    await h.orchestrator.start(c);
    await h.orchestrator.exec(c, ['ln', '-s', '/etc', 'etc-link']);
    const uid = await uidOf(c);
    const info = await h.orchestrator.inspect(c);
    await h.orchestrator.stop(c);
    await expect(h.orchestrator.writeWorkspaceFile(c, 'etc-link/passwd', Buffer.from('x'))).rejects.toThrow(
      /not a directory/,
    );
    await h.orchestrator.writeWorkspaceFile(c, 'notes/a.md', Buffer.from('# a'));
    expect(statSync(join(h.root, 'tenants', c, 'workspace', 'notes', 'a.md')).uid).toBe(uid);

    await h.orchestrator.start(c);
    await h.orchestrator.destroy(c);
    expect(await h.orchestrator.inspect(c)).toBeUndefined();
    expect(await processesOfUid(uid)).toEqual([]);
    expect(existsSync(join(h.root, 'tenants', c))).toBe(false);
    expect(existsSync(h.gateway.dirOf(c))).toBe(false);
    expect(await new UidRegistry().owner(uid)).toBeUndefined();
    // dockerd mounts in the host's mount namespace (the one this test runs in).
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(c);
    expect(mounts).not.toContain(info!.Id);
  });
});
