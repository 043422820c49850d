import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { startProcess, waitFor } from '../src/process.js';
import { listenOn } from '../src/serve.js';

const app = new Hono().get('/ping', (c) => c.json({ pong: true }));

function getOverSocket(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('listenOn', () => {
  it('serves on TCP', async () => {
    const running = await listenOn(app, { port: 0 });
    expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`${running.url}/ping`)).json()).toEqual({ pong: true });
    await running.close();
  });

  it('serves on a unix socket, replacing a stale socket but never another file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'core-serve-'));
    dirs.push(dir);
    const path = join(dir, 'app.sock');
    const first = await listenOn(app, { path });
    expect(first).toMatchObject({ url: `unix:${path}`, port: 0, path });
    expect(await getOverSocket(path, '/ping')).toEqual({ status: 200, body: '{"pong":true}' });
    await first.close();
    expect(existsSync(path)).toBe(false);

    // A process that died without closing leaves its socket file behind; the next listen replaces it.
    const crashed = startProcess(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)})`,
    ]);
    await waitFor(() => existsSync(path), { what: 'the socket file' });
    process.kill(crashed.pid, 'SIGKILL');
    await crashed.exited;
    expect(existsSync(path)).toBe(true);
    const again = await listenOn(app, { path });
    expect((await getOverSocket(path, '/ping')).status).toBe(200);
    await again.close();

    const notASocket = join(dir, 'file');
    writeFileSync(notASocket, 'data');
    await expect(listenOn(app, { path: notASocket })).rejects.toThrow('is not a socket');
  });
});
