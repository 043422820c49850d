import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortInUseError, type SandboxExit } from '../src/sandbox.js';
import { createTestSandboxManager, type TestSandboxManager } from '../src/testing.js';

const MiB = 1024 * 1024;
let env: TestSandboxManager;

beforeAll(async () => {
  env = await createTestSandboxManager();
});
afterAll(async () => {
  await env?.cleanup();
});

/** Sends `text` to a host loopback port, half-closes, and returns everything read back. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.end(text));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
    socket.on('error', reject);
  });
}

function httpGet(options: { port?: number; socketPath?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', path: '/', ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    });
    req.on('error', reject);
    req.end();
  });
}

const NODE_SERVER = (listen: string) =>
  `require('http').createServer((q, r) => r.end('inside ' + process.getuid())).listen(${listen})`;

describe('forwarded sockets', () => {
  it('runs a command per connection (inetd style) behind a host loopback port', async () => {
    const s = await env.manager.create({
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      forwards: [{ name: 'echo', tcpPort: 0, target: { kind: 'exec', argv: ['/bin/bash', '-c', 'id -u; cat'] } }],
    });
    const { tcpPorts } = await s.start();
    expect(tcpPorts.echo).toBeGreaterThan(0);
    expect(await roundTrip(tcpPorts.echo as number, 'hello\n')).toBe(`${s.uid}\nhello\n`);
    // Ten at once, each its own process.
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => roundTrip(tcpPorts.echo as number, `${i}`)));
    expect(replies).toEqual(Array.from({ length: 10 }, (_, i) => `${s.uid}\n${i}`));
    // The host side is a unix socket only root can reach.
    expect(existsSync(s.socketPath('echo'))).toBe(true);
    await s.destroy();
  });

  it('gives per-connection commands one socket as stdin and stdout (inetd daemons write to fd 0)', async () => {
    const s = await env.manager.create({
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      forwards: [
        {
          name: 'fd0',
          tcpPort: 0,
          target: { kind: 'exec', argv: ['/bin/sh', '-c', 'read line; echo "got $line" >&0'] },
        },
      ],
    });
    const { tcpPorts } = await s.start();
    expect(await roundTrip(tcpPorts.fd0 as number, 'ping\n')).toBe('got ping\n');
    await s.destroy();
  });

  it('moves to a free port when asked, and says which port was taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;
    const s = await env.manager.create({
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      forwards: [{ name: 'echo', tcpPort: taken, target: { kind: 'exec', argv: ['/bin/cat'] } }],
      labels: { a: '1' },
    });
    const error = await s.start().catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).cause).toBeInstanceOf(PortInUseError);
    expect(s.status).toBe('stopped');
    expect(s.hasRuntimeLeftovers()).toBe(false);
    const { tcpPorts } = await s.start({ tcpPorts: { echo: 0 } });
    expect(tcpPorts.echo).not.toBe(taken);
    expect(await roundTrip(tcpPorts.echo as number, 'x')).toBe('x');
    await s.setLabels({ a: '2', b: 'x' });
    expect((await env.manager.list()).find((i) => i.id === s.id)?.labels).toEqual({ a: '2', b: 'x' });
    await s.destroy();
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  });

  it('bridges to a server listening on the sandbox’s own loopback', async () => {
    const s = await env.manager.create({
      limits: { memoryBytes: 192 * MiB, pids: 64 },
      command: ['node', '-e', NODE_SERVER("8080, '127.0.0.1'")],
      forwards: [{ name: 'web', tcpPort: 0, target: { kind: 'tcp', port: 8080 } }],
    });
    const { tcpPorts } = await s.start();
    const body = await waitFor(() => httpGet({ port: tcpPorts.web as number }).catch(() => undefined), {
      what: 'the server inside',
    });
    expect(body).toBe(`inside ${s.uid}`);
    await s.destroy();
  });

  it('hands the listening socket to the main command (LISTEN_FDS)', async () => {
    const s = await env.manager.create({
      limits: { memoryBytes: 192 * MiB, pids: 64 },
      command: ['node', '-e', `if (process.env.LISTEN_FDNAMES !== 'api') process.exit(9); ${NODE_SERVER('{ fd: 3 }')}`],
      forwards: [{ name: 'api', target: { kind: 'fd' } }],
    });
    const { tcpPorts } = await s.start();
    expect(tcpPorts).toEqual({});
    const body = await waitFor(() => httpGet({ socketPath: s.socketPath('api') }).catch(() => undefined), {
      what: 'the server on the inherited socket',
    });
    expect(body).toBe(`inside ${s.uid}`);
    await s.destroy();
  });

  it('runs a boot command to completion before serving connections', async () => {
    const s = await env.manager.create({
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      forwards: [{ name: 'cat', tcpPort: 0, target: { kind: 'exec', argv: ['/bin/bash', '-c', 'cat ~/boot'] } }],
    });
    const { before, tcpPorts } = await s.start({
      before: { argv: ['/bin/bash', '-c', 'sleep 0.3; echo booted > ~/boot; echo done; exit 4'] },
    });
    expect(before).toMatchObject({ exitCode: 4, stdout: 'done\n', timedOut: false });
    expect(await roundTrip(tcpPorts.cat as number, '')).toBe('booted\n');
    expect(readFileSync(`${s.dataDir}/boot`, 'utf8')).toBe('booted\n');
    await s.destroy();
  });
});

describe('the main command', () => {
  it('ends the sandbox when it exits, and the exit is reported with its code', async () => {
    const s = await env.manager.create({
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      command: ['/bin/bash', '-c', 'sleep 0.2; exit 3'],
    });
    const exits: SandboxExit[] = [];
    s.on('exit', (exit: SandboxExit) => exits.push(exit));
    await s.start();
    const exit = await s.waitForExit();
    expect(exit).toEqual({ reason: 'main-exited', code: 3, signal: null });
    expect(exits).toEqual([exit]);
    expect(s.status).toBe('stopped');
    expect(s.hasRuntimeLeftovers()).toBe(false);
    await s.destroy();
  });

  it('reports a stop as a stop', async () => {
    const s = await env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 64 }, command: ['sleep', '1000'] });
    await s.start();
    const exits: SandboxExit[] = [];
    s.on('exit', (exit: SandboxExit) => exits.push(exit));
    await s.stop({ graceMs: 1_000 });
    expect(exits.map((e) => e.reason)).toEqual(['stopped']);
    await s.destroy();
  });
});

describe('specs', () => {
  it('refuses bad specs before touching the host', async () => {
    const before = (await env.manager.list()).length;
    await expect(env.manager.create({ limits: { memoryBytes: 1024, pids: 64 } })).rejects.toThrow(/64 MiB/);
    await expect(env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 64 }, mountAt: '/etc' })).rejects.toThrow(
      /system directory/,
    );
    await expect(env.manager.create({ limits: { memoryBytes: 128 * MiB, pids: 64 }, user: 'Root!' })).rejects.toThrow();
    expect((await env.manager.list()).length).toBe(before);
  });

  it('mounts the writable directory where asked', async () => {
    const s = await env.manager.create({
      user: 'dev',
      mountAt: '/workspace',
      limits: { memoryBytes: 128 * MiB, pids: 64 },
      env: { GREETING: 'hi' },
    });
    await s.start();
    const result = await s.exec(['/bin/bash', '-c', 'pwd; echo $HOME $USER $GREETING; touch here']);
    expect(result.stdout).toBe('/workspace\n/workspace dev hi\n');
    expect(existsSync(`${s.dataDir}/here`)).toBe(true);
    await s.destroy();
  });
});
