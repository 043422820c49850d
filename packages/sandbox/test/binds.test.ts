import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnPty } from '../src/pty.js';
import { sandboxSpecSchema } from '../src/spec.js';
import { createTestSandboxManager, type TestSandboxManager } from '../src/testing.js';

const MiB = 1024 * 1024;
let env: TestSandboxManager;
let host: string;

beforeAll(async () => {
  env = await createTestSandboxManager();
  host = await mkdtemp(join(tmpdir(), 'sandbox-binds-'));
  await chmod(host, 0o711);
});
afterAll(async () => {
  await env?.cleanup();
  if (host) await rm(host, { recursive: true, force: true });
});

const limits = { memoryBytes: 256 * MiB, pids: 128 };

describe('bind validation', () => {
  const parse = (bind: object) => sandboxSpecSchema.safeParse({ limits, binds: [bind] });
  it('accepts a workspace, a program directory and a directory under /run', () => {
    for (const at of ['/workspace', '/opt/app', '/run/agentsquads', '/srv/data/x'])
      expect(parse({ hostPath: '/var/lib/x', at }).success).toBe(true);
    expect(parse({ hostPath: '/data/x/', at: '/workspace/' }).data?.binds[0]).toEqual({
      hostPath: '/data/x',
      at: '/workspace',
      readOnly: false,
    });
  });
  it('refuses to cover system directories or the agent', () => {
    for (const at of [
      '/',
      '/usr',
      '/usr/bin',
      '/etc/passwd',
      '/proc/1',
      '/dev',
      '/tmp',
      '/run',
      '/run/sandbox',
      '/home',
      '/bin/x',
      '/lib64',
      '/root/x',
      '/sys',
    ])
      expect(parse({ hostPath: '/data/x', at }).success, at).toBe(false);
  });
  it('refuses relative paths, .. and host socket or kernel directories as sources', () => {
    for (const hostPath of [
      'data/x',
      '/data/../etc',
      '/data/./x',
      '/',
      '/etc',
      '/run',
      '/run/docker.sock',
      '/var/run/x',
      '/proc/self',
      '/dev/shm',
      '/tmp',
      '/sys/fs',
    ])
      expect(parse({ hostPath, at: '/workspace' }).success, hostPath).toBe(false);
  });
  it('refuses overlapping binds and binds over the writable directory', async () => {
    await expect(
      env.manager.create({
        limits,
        binds: [
          { hostPath: '/data/a', at: '/opt/a' },
          { hostPath: '/data/b', at: '/opt/a/b' },
        ],
      }),
    ).rejects.toThrow(/binds\.0\.at: \/opt\/a overlaps binds\.1\.at/);
    await expect(
      env.manager.create({ limits, user: 'agent', binds: [{ hostPath: '/data/a', at: '/home/agent/x' }] }),
    ).rejects.toThrow(/overlaps the writable directory/);
  });
});

describe('binds', () => {
  it('mounts a writable workspace and a read-only directory; nothing else of the host', async () => {
    const workspace = join(host, 'ws');
    const program = join(host, 'program');
    await mkdir(workspace);
    await mkdir(program);
    await writeFile(join(program, 'tool.sh'), 'echo tool-ran\n');
    const s = await env.manager.create({
      limits,
      binds: [
        { hostPath: workspace, at: '/workspace' },
        { hostPath: program, at: '/opt/program', readOnly: true },
      ],
    });
    await chown(workspace, s.uid, s.uid);
    await chmod(workspace, 0o700);
    await s.start();
    const result = await s.exec(
      [
        '/bin/bash',
        '-c',
        'echo hi > /workspace/f && echo ws-ok; sh /opt/program/tool.sh; (echo x > /opt/program/y) 2>/dev/null || echo ro-ok; ls /opt; ls / | tr "\\n" " "',
      ],
      { cwd: '/workspace' },
    );
    expect(result.stdout).toContain('ws-ok\ntool-ran\nro-ok\nprogram\n');
    expect(readFileSync(join(workspace, 'f'), 'utf8')).toBe('hi\n');
    expect(statSync(join(workspace, 'f')).uid).toBe(s.uid);
    expect(existsSync(join(program, 'y'))).toBe(false);
    await s.destroy();
    // destroy removes the sandbox's own directory, never a bound one.
    expect(readFileSync(join(workspace, 'f'), 'utf8')).toBe('hi\n');
  });

  it('says which directory the sandbox uid cannot enter instead of failing in bwrap', async () => {
    const closed = join(host, 'closed');
    await mkdir(join(closed, 'inner'), { recursive: true });
    await chmod(closed, 0o700);
    const s = await env.manager.create({ limits, binds: [{ hostPath: join(closed, 'inner'), at: '/workspace' }] });
    await expect(s.start()).rejects.toThrow(`cannot enter ${closed}`);
    const missing = await env.manager.create({ limits, binds: [{ hostPath: join(host, 'nope'), at: '/workspace' }] });
    await expect(missing.start()).rejects.toThrow('does not exist');
    await s.destroy();
    await missing.destroy();
  });
});

describe('a unix socket forward and per-run environment', () => {
  it('reaches a server listening on a unix socket inside; the secret env reaches only the main command', async () => {
    const run = join(host, 'run');
    await mkdir(run);
    const s = await env.manager.create({
      limits,
      env: { VISIBLE: 'yes' },
      binds: [{ hostPath: run, at: '/run/app' }],
      command: [
        env.manager.nodePath,
        '-e',
        "const e = process.env; require('http').createServer((q, r) => r.end('uid=' + process.getuid() + ' secret=' + e.SECRET + ' visible=' + e.VISIBLE)).listen('/run/app/app.sock')",
      ],
      forwards: [{ name: 'app', target: { kind: 'unix', path: '/run/app/app.sock' } }],
    });
    await chown(run, s.uid, s.uid);
    await s.start({ env: { SECRET: 's3cret-value' } });
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: s.socketPath('app'), path: '/' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe(`uid=${s.uid} secret=s3cret-value visible=yes`);
    // Commands run with exec see the spec's environment, not the run's secrets; nor is it on disk.
    expect((await s.exec(['/bin/sh', '-c', 'echo "$VISIBLE/$SECRET"'])).stdout).toBe('yes/\n');
    const stored = await readFile(join(env.stateDir, 'sandboxes', s.id, 'sandbox.json'), 'utf8');
    expect(stored).not.toContain('s3cret-value');
    await s.destroy();
  });
});

describe('pty', () => {
  it('runs tmux on a pseudo-terminal, resizes it, and the session outlives the terminal', async () => {
    const s = await env.manager.create({ limits });
    await s.start();
    const pty = spawnPty(s, ['tmux', 'new-session', '-A', '-s', 'main'], { cols: 100, rows: 30 });
    let screen = '';
    pty.stdout.on('data', (c: Buffer) => {
      screen += c.toString();
    });
    await waitFor(() => screen.includes('$ '), { what: 'a shell prompt', timeoutMs: 15_000 });
    pty.stdin.write('tty; echo "cols=$(tput cols) hello-$((6*7))"\r');
    await waitFor(() => screen.includes('hello-42'), { what: 'command output', timeoutMs: 10_000 });
    expect(screen).toMatch(/\/dev\/pts\/\d+/);
    expect(screen).toContain('cols=100');
    await pty.resize(120, 40);
    pty.stdin.write('echo "cols=$(tput cols) lines=$(tput lines)"\r');
    // tmux keeps one line for its status bar.
    await waitFor(() => screen.includes('cols=120 lines=39'), { what: 'the new size', timeoutMs: 10_000 });
    pty.kill('SIGTERM');
    await pty.exited;
    expect((await s.exec(['tmux', 'ls'])).stdout).toMatch(/^main: 1 windows/);
    await expect(pty.resize(0, 10)).rejects.toThrow('cols');
    await s.destroy();
  });
});
