import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bridgesSchema, type RunningBridges, startBridges } from '../src/bridges.js';
import { loadRuntimeConfig } from '../src/config.js';
import { tempDir } from './helpers.js';

const freePort = async () => {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
};

describe('RUNTIME_BRIDGES', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('parses loopback entries and names a bad one', () => {
    expect(bridgesSchema.parse('127.0.0.1:8090=/run/a/llm.sock, 127.0.0.1:3128=/run/a/egress.sock')).toEqual([
      { host: '127.0.0.1', port: 8090, socketPath: '/run/a/llm.sock' },
      { host: '127.0.0.1', port: 3128, socketPath: '/run/a/egress.sock' },
    ]);
    expect(bridgesSchema.parse(undefined)).toEqual([]);
    expect(() =>
      loadRuntimeConfig({
        TENANT_ID: 't',
        PLATFORM_API_URL: 'http://127.0.0.1:3001',
        PLATFORM_API_KEY: 'k',
        LLM_PROXY_URL: 'http://127.0.0.1:8090',
        RUNTIME_AUTH_TOKEN: 'x'.repeat(16),
        RUNTIME_BRIDGES: '0.0.0.0:80=/tmp/x.sock',
      }),
    ).toThrow(/RUNTIME_BRIDGES/);
    expect(() => bridgesSchema.parse('127.0.0.1:99999=/tmp/x.sock')).toThrow(/out of range/);
  });

  it('carries HTTP over a loopback port to the unix socket, both ways, and closes cleanly', async () => {
    const dir = tempDir('bridge');
    const socketPath = join(dir, 'upstream.sock');
    const upstream = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.end(JSON.stringify({ path: req.url, body })));
    }).listen(socketPath);
    await once(upstream, 'listening');
    cleanups.push(() => new Promise((r) => upstream.close(r)));
    const port = await freePort();
    const bridges: RunningBridges = await startBridges([{ host: '127.0.0.1', port, socketPath }]);
    cleanups.push(() => bridges.close());

    const res = await fetch(`http://127.0.0.1:${port}/v1/models`, { method: 'POST', body: 'hello' });
    expect(await res.json()).toEqual({ path: '/v1/models', body: 'hello' });

    // An upstream that is gone: the caller's connection ends instead of hanging.
    const deadPort = await freePort();
    const dead = await startBridges([{ host: '127.0.0.1', port: deadPort, socketPath: join(dir, 'missing.sock') }]);
    cleanups.push(() => dead.close());
    const socket = connect(deadPort, '127.0.0.1');
    await once(socket, 'close');
  });

  it('refuses a port that is taken, naming it', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    cleanups.push(() => new Promise((r) => taken.close(r)));
    const { port } = taken.address() as AddressInfo;
    await expect(startBridges([{ host: '127.0.0.1', port, socketPath: '/tmp/none.sock' }])).rejects.toThrow(
      `127.0.0.1:${port}`,
    );
  });
});
