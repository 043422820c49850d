import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sandbox } from '../src/sandbox.js';
import { createTestSandboxManager, type TestSandboxManager } from '../src/testing.js';
import { processesOfUid } from '../src/uids.js';

const MiB = 1024 * 1024;
let env: TestSandboxManager;
let sandbox: Sandbox;

beforeAll(async () => {
  env = await createTestSandboxManager();
  sandbox = await env.manager.create({ user: 'agent', limits: { memoryBytes: 256 * MiB, pids: 128, cpus: 0.5 } });
  await sandbox.start();
});

afterAll(async () => {
  await env?.cleanup();
});

const sh = (script: string, timeoutMs = 20_000) => sandbox.exec(['/bin/bash', '-c', script], { timeoutMs });
/** Calls a raw syscall with perl (Debian's perl-base is always there) and prints errno's name or "ok". */
const syscall = (nr: number, ...args: number[]) =>
  sh(
    `perl -MErrno -e '$r = syscall(${[nr, ...args].join(', ')}); if ($r == -1) { for (keys %!) { if ($!{$_}) { print $_; exit } } print "errno" . ($!+0) } else { print "ok" }'`,
  );

describe('a sandboxed process', () => {
  it('runs as the sandbox uid with no capabilities, no new privileges and the seccomp filter', async () => {
    const result = await sh('id -u; id -un; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status');
    expect(result.exitCode).toBe(0);
    const [uid, name, ...status] = result.stdout.trim().split('\n');
    expect(Number(uid)).toBe(sandbox.uid);
    expect(sandbox.uid).toBeGreaterThanOrEqual(2_000_000);
    expect(name).toBe('agent');
    expect(status).toEqual(['CapEff:\t0000000000000000', 'CapBnd:\t0000000000000000', 'NoNewPrivs:\t1', 'Seccomp:\t2']);
  });

  it('cannot see host processes', async () => {
    const result = await sh('for p in /proc/[0-9]*; do echo "$(basename $p) $(tr "\\0" " " < $p/cmdline)"; done');
    const processes = result.stdout.trim().split('\n');
    // bwrap's init, the agent, bash and the loop's subshells: nothing of the host.
    expect(processes.length).toBeLessThan(10);
    expect(processes.some((line) => /^1 \S*bwrap /.test(line))).toBe(true);
    expect(processes.join('\n')).not.toMatch(/vitest|postgres|dockerd|anvil/);
    // Our own pid on the host means nothing inside.
    const own = await sh(`cat /proc/${process.pid}/cmdline 2>&1 || true`);
    expect(own.stdout).not.toContain('node');
    expect(await sh('kill -0 1 2>&1; echo; ls /proc/1/root 2>&1 | head -1')).toMatchObject({ exitCode: 0 });
  });

  it('cannot write outside its own directory', async () => {
    const result = await sh(
      [
        'for f in /usr/x /etc/x /x /home/x /var/x /proc/x; do (echo x > $f) 2>/dev/null && echo "wrote $f"; done',
        'echo hello > ~/note.txt && echo home-ok',
        'echo private > /tmp/private-marker-$$ && echo tmp-ok',
        'echo $HOME',
      ].join('; '),
    );
    const lines = result.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('wrote'))).toEqual([]);
    expect(lines).toContain('home-ok');
    expect(lines).toContain('tmp-ok');
    expect(lines.at(-1)).toBe('/home/agent');
    // The home directory is the host directory, owned by the sandbox uid and closed to others.
    const note = join(sandbox.dataDir, 'note.txt');
    expect(readFileSync(note, 'utf8')).toBe('hello\n');
    expect(statSync(note).uid).toBe(sandbox.uid);
    expect(statSync(sandbox.dataDir).mode & 0o777).toBe(0o700);
    // /tmp inside is private: nothing appeared in the host's /tmp.
    expect((await readdir('/tmp')).filter((n) => n.startsWith('private-marker-'))).toEqual([]);
  });

  it('sees no host secrets: only allow-listed /etc entries, no /sys, no /root', async () => {
    const result = await sh('ls /etc; ls -d /sys /root /home/agent 2>&1; cat /etc/passwd');
    expect(result.stdout).toContain('passwd');
    expect(result.stdout).not.toMatch(/\bshadow\b|\bsudoers\b|\bssh\b|docker/);
    expect(result.stdout).toContain("cannot access '/sys': No such file");
    expect(result.stdout).toContain("cannot access '/root': No such file");
    expect(result.stdout).toMatch(new RegExp(`^agent:x:${sandbox.uid}:${sandbox.uid}:`, 'm'));
    expect(result.stdout).not.toMatch(/^root:/m);
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    let connections = 0;
    beforeAll(async () => {
      server = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
      // The service answers from the host.
      const reply = await new Promise<string>((resolve) => {
        const c = connect(port, '127.0.0.1', () => resolve('connected'));
        c.on('error', (err) => resolve(err.message));
        c.on('close', () => c.destroy());
      });
      expect(reply).toBe('connected');
      await waitFor(() => connections === 1, { what: 'the host connection' });
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('cannot reach a service listening on the host loopback', async () => {
      const before = connections;
      const result = await sh(`timeout 3 bash -c 'echo > /dev/tcp/127.0.0.1/${port}' 2>&1; echo "rc=$?"`);
      expect(result.stdout).toMatch(/Connection refused/);
      expect(result.stdout).not.toContain('rc=0');
      expect(connections).toBe(before);
    });

    it('has only a loopback interface: host addresses are unreachable', async () => {
      const links = await sh('ip -o link show | cut -d: -f2');
      expect(
        links.stdout
          .trim()
          .split('\n')
          .map((s) => s.trim()),
      ).toEqual(['lo']);
      const hostAddress = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
      if (hostAddress) {
        const result = await sh(`timeout 3 bash -c 'echo > /dev/tcp/${hostAddress}/${port}' 2>&1; echo "rc=$?"`);
        expect(result.stdout).toMatch(/Network is unreachable/);
      }
      expect(connections).toBe(1);
    });
  });

  it('cannot mount, ptrace, unshare, join namespaces or create user namespaces (EPERM from the filter)', async () => {
    // x86-64 numbers: mount 165, ptrace 101 (PTRACE_TRACEME is allowed to anyone without a filter),
    // unshare 272, setns 308, clone 56, bpf 321, keyctl 250, init_module 175.
    expect((await syscall(165, 0, 0, 0, 0, 0)).stdout).toBe('EPERM');
    expect((await syscall(101, 0, 0, 0, 0)).stdout).toBe('EPERM');
    expect((await syscall(272, 0)).stdout).toBe('EPERM');
    expect((await syscall(272, 0x1000_0000)).stdout).toBe('EPERM');
    expect((await syscall(308, 0, 0)).stdout).toBe('EPERM');
    expect((await syscall(56, 0x1000_0000 | 17, 0, 0, 0, 0)).stdout).toBe('EPERM');
    expect((await syscall(321, 0, 0, 0)).stdout).toBe('EPERM');
    expect((await syscall(250, 0, 0, 0)).stdout).toBe('EPERM');
    expect((await syscall(175, 0, 0, 0)).stdout).toBe('EPERM');
    // And the everyday tools fail the same way.
    const tools = await sh('unshare -U true 2>&1; echo "rc=$?"; mount -t tmpfs none /tmp 2>&1; echo "rc=$?"');
    expect(tools.stdout).toMatch(/unshare failed: Operation not permitted\nrc=1/);
    expect(tools.stdout).not.toMatch(/\nrc=0/);
  });

  it('passes no stray file descriptors to commands', async () => {
    const result = await sh('ls /proc/self/fd');
    // 0-2 and the directory ls itself is reading.
    expect(result.stdout.trim().split('\n').map(Number).sort()).toEqual([0, 1, 2, 3]);
  });

  it('kills a command at its timeout, with its whole process group', async () => {
    const started = Date.now();
    const result = await sandbox.exec(['/bin/bash', '-c', 'sleep 300 & sleep 300; echo never'], { timeoutMs: 300 });
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await sh('pgrep -c sleep || true')).stdout.trim()).toBe('0');
  });

  it('streams a process with stdin and stdout', async () => {
    const proc = sandbox.spawn(['/bin/cat']);
    const chunks: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => chunks.push(c));
    proc.stdin.write('ping\n');
    proc.stdin.end('pong\n');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(Buffer.concat(chunks).toString()).toBe('ping\npong\n');
  });

  it('reports CPU quota, memory and pids from its cgroups', async () => {
    const stats = await sandbox.stats();
    expect(stats.cpu.quotaCores).toBe(0.5);
    expect(stats.memory.limitBytes).toBe(256 * MiB);
    expect(stats.memory.usageBytes).toBeGreaterThan(0);
    expect(stats.pids.limit).toBe(128);
    expect(stats.pids.current).toBeGreaterThan(0);
    expect(stats.cpu.usageNanos).toBeGreaterThan(0);
  });
});

describe('limits', () => {
  it('kills a memory bomb at the memory limit and keeps the sandbox alive', async () => {
    const bomb = await env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 64 } });
    await bomb.start();
    const result = await bomb.exec(['perl', '-e', 'my @a; while (1) { push @a, "x" x (1 << 20) }'], {
      timeoutMs: 30_000,
    });
    expect(result.signal).toBe('SIGKILL');
    expect(result.timedOut).toBe(false);
    const stats = await bomb.stats();
    expect(stats.memory.oomKills).toBeGreaterThanOrEqual(1);
    expect(stats.memory.maxUsageBytes).toBeLessThanOrEqual(128 * MiB);
    // The agent survived (user processes are the OOM killer's first choice).
    expect((await bomb.exec(['true'])).exitCode).toBe(0);
    await bomb.destroy();
  });

  it('stops a fork bomb at the pids limit', async () => {
    const bomb = await env.manager.create({ limits: { memoryBytes: 256 * MiB, pids: 48, cpus: 1 } });
    await bomb.start();
    expect((await bomb.stats()).pids.limit).toBe(48);
    const result = await bomb.exec(['/bin/bash', '-c', 'b() { b | b & }; b; sleep 2'], { timeoutMs: 4_000 });
    expect(result.exitCode === 0 || result.timedOut).toBe(true);
    const stats = await bomb.stats();
    expect(stats.pids.current).toBeLessThanOrEqual(48);
    expect(stats.pids.refusedForks).toBeGreaterThan(0);
    // The host never saw more than the limit as that uid.
    expect((await processesOfUid(bomb.uid)).length).toBeLessThanOrEqual(48);
    await bomb.stop({ graceMs: 0 });
    expect(await processesOfUid(bomb.uid)).toEqual([]);
    await bomb.destroy();
  });

  it('changes limits while running', async () => {
    await sandbox.setLimits({ memoryBytes: 300 * MiB, pids: 100, cpus: 1.5 });
    const stats = await sandbox.stats();
    expect(stats.memory.limitBytes).toBe(300 * MiB);
    expect(stats.pids.limit).toBe(100);
    expect(stats.cpu.quotaCores).toBe(1.5);
    expect(sandbox.limits.cpus).toBe(1.5);
  });
});

describe('lifecycle', () => {
  it('gives every sandbox its own uid, reserved machine-wide until destroy', async () => {
    const a = await env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 32 } });
    const b = await env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 32 } });
    expect(a.uid).not.toBe(b.uid);
    expect(await env.manager.registry.owner(a.uid)).toBe(a.id);
    await a.destroy();
    expect(await env.manager.registry.owner(a.uid)).toBeUndefined();
    expect(await env.manager.registry.owner(b.uid)).toBe(b.id);
    await b.destroy();
  });

  it('stop leaves no process behind, daemons and double forks included, and keeps the data', async () => {
    const s = await env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 64 } });
    await s.start();
    await s.exec([
      '/bin/bash',
      '-c',
      'echo kept > ~/kept; (setsid bash -c "sleep 1000 & disown" &); nohup sleep 999 >/dev/null 2>&1 &',
    ]);
    expect((await processesOfUid(s.uid)).length).toBeGreaterThan(2);
    const cgroups = s.cgroupDirs();
    expect(cgroups.every((dir) => existsSync(dir))).toBe(true);
    const exit = await s.stop({ graceMs: 500 });
    expect(exit?.reason).toBe('stopped');
    expect(s.status).toBe('stopped');
    expect(await processesOfUid(s.uid)).toEqual([]);
    expect(cgroups.filter((dir) => existsSync(dir))).toEqual([]);
    expect(s.hasRuntimeLeftovers()).toBe(false);
    // Started again: same uid, same data.
    await s.start();
    expect((await s.exec(['cat', 'kept'])).stdout).toBe('kept\n');
    await s.destroy();
  });

  it('destroy leaves no process, mount, cgroup, socket, file or uid reservation behind', async () => {
    const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
    const s = await env.manager.create({
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      forwards: [{ name: 'echo', tcpPort: 0, target: { kind: 'exec', argv: ['/bin/cat'] } }],
    });
    const { tcpPorts } = await s.start();
    const dir = join(env.stateDir, 'sandboxes', s.id);
    const socket = s.socketPath('echo');
    expect(existsSync(socket)).toBe(true);
    await s.exec(['/bin/bash', '-c', 'sleep 1000 & echo data > ~/file']);
    await s.destroy();

    expect(await processesOfUid(s.uid)).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).toBe(mountsBefore);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(s.id);
    expect(await env.manager.cgroupsOnHost()).not.toContain(s.id);
    for (const parent of env.manager.cgroupParents.values()) expect(existsSync(join(parent, s.id))).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(socket)).toBe(false);
    expect(await env.manager.registry.owner(s.uid)).toBeUndefined();
    expect((await env.manager.list()).map((i) => i.id)).not.toContain(s.id);
    // The port forward is closed.
    const refused = await new Promise<string>((resolve) => {
      const c = connect(tcpPorts.echo as number, '127.0.0.1');
      c.on('connect', () => {
        c.destroy();
        resolve('connected');
      });
      c.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('is found again by a new manager (after a restart) and starts with its data', async () => {
    const s = await env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 32 }, labels: { owner: 'test' } });
    await s.start();
    await s.exec(['/bin/bash', '-c', 'echo persisted > ~/p']);
    await s.stop();
    const { createSandboxManager } = await import('../src/manager.js');
    const again = await createSandboxManager({ stateDir: env.stateDir });
    const infos = await again.list();
    expect(infos.find((i) => i.id === s.id)).toMatchObject({
      uid: s.uid,
      labels: { owner: 'test' },
      status: 'stopped',
    });
    const reopened = await again.open(s.id);
    await reopened.start();
    expect((await reopened.exec(['cat', 'p'])).stdout).toBe('persisted\n');
    await reopened.destroy();
  });
});
