import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fundUsdc, usdcBalance } from '@agentstack/chain';
import { freePort, startProcess, waitFor } from '@agentstack/core';
import pg from 'pg';
import { createPublicClient, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { type Endpoints, isAlive } from '../src/endpoints.js';
import { discoverServices } from '../src/manifest.js';
import { startStack } from '../src/start.js';

const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const dirs: string[] = [];
async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'stack-test-'));
  // As root, PostgreSQL runs as the postgres user, which must be able to enter the data directory.
  await chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Free ports for the devnet and every discovered service (its HTTP port and extra ports such as SMTP). */
async function ports() {
  const env: Record<string, string> = { DEVNET_PORT: String(await freePort()) };
  for (const service of discoverServices()) {
    for (const variable of [service.port.env, ...service.extraPorts.map((p) => p.env)]) {
      env[variable] = String(await freePort());
    }
  }
  return env;
}

describe('start (the CLI, as a newcomer runs it)', () => {
  it('brings up database, devnet and facilitator, writes endpoints, and Ctrl-C leaves no process behind', async () => {
    const dataDir = await tempDir();
    const proc = startProcess(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), cli, 'start', '--data-dir', dataDir],
      {
        env: { ...process.env, ...(await ports()) },
      },
    );
    const endpointsFile = join(dataDir, 'endpoints.json');
    try {
      await waitFor(
        () => {
          if (proc.child.exitCode !== null) throw new Error('start exited');
          // The summary is printed after the endpoints file is written.
          return existsSync(endpointsFile) && proc.output().includes('Ctrl-C stops everything');
        },
        { timeoutMs: 480_000, what: 'endpoints.json' },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${proc.output()}`);
    }
    const endpoints = JSON.parse(await readFile(endpointsFile, 'utf8')) as Endpoints;
    expect(endpoints.facilitator?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(endpoints.devnet?.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(endpoints.devnet?.chainId).toBe(8453);
    expect(endpoints.database?.port).toBeGreaterThan(0);
    expect(proc.output()).toContain('payer');
    expect(proc.output()).toContain('pnpm stack faucet');

    // Everything answers.
    const supported = await fetch(`${endpoints.facilitator?.url}/supported`);
    expect(supported.status).toBe(200);
    // wallet.sh runs, with the devnet's Uniswap deployed for its swaps.
    expect(endpoints.devnet?.uniswap?.router).toMatch(/^0x[0-9a-fA-F]{40}$/);
    const wallet = await fetch(`${endpoints.services.wallet?.url}/v1/health`);
    expect(await wallet.json()).toMatchObject({ status: 'ok', chain: 'devnet' });
    const platformApi = endpoints.services['platform-api'];
    expect((await fetch(`${platformApi?.url}/api/health`)).status).toBe(200);
    // The web app runs after the platform API and proxies /api/* to it.
    const web = endpoints.services.web?.url;
    expect(await (await fetch(`${web}/healthz`)).json()).toMatchObject({ status: 'ok', service: 'web' });
    expect((await fetch(`${web}/api/health`)).status).toBe(200);
    // The LLM proxy is served by the platform API on its own port, and printed with it.
    const proxyPort = platformApi?.ports?.['llm-proxy'];
    expect(proxyPort).toBeGreaterThan(0);
    expect(await (await fetch(`http://127.0.0.1:${proxyPort}/health`)).json()).toMatchObject({ demo: false });
    expect(proc.output()).toContain(`llm-proxy http://127.0.0.1:${proxyPort}`);
    await waitFor(() => /dev admin .*admin@agentsquads\.local/.test(proc.output()), {
      what: 'the dev admin credentials to be printed',
    });
    const client = new pg.Client({
      connectionString: `postgres://postgres:postgres@127.0.0.1:${endpoints.database?.port}/postgres`,
    });
    await client.connect();
    expect((await client.query('select 1 as one')).rows[0].one).toBe(1);
    await client.end();

    const pids = [
      endpoints.pid,
      endpoints.devnet?.pid,
      endpoints.database?.pid,
      ...Object.values(endpoints.services).map((s) => s.pid),
    ] as number[];
    expect(pids.every(isAlive)).toBe(true);

    process.kill(proc.pid, 'SIGINT');
    await proc.exited;
    await waitFor(() => pids.every((pid) => !isAlive(pid)), { timeoutMs: 15_000, what: 'every process to exit' });
    expect(existsSync(endpointsFile)).toBe(false);
    expect(proc.output()).toContain('Stopped.');
  });
});

describe('startStack', () => {
  it('reuses the data on a second start, and --fresh starts clean', async () => {
    const dataDir = await tempDir();
    const env = { ...process.env, ...(await ports()) };
    const someone = privateKeyToAccount(generatePrivateKey()).address;
    const balanceOf = async (rpcUrl: string) =>
      usdcBalance(
        createPublicClient({ transport: http(rpcUrl) }),
        someone,
        '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
      );

    let stack = await startStack({ dataDir, env });
    const rpc = stack.endpoints.devnet?.rpcUrl as string;
    await fundUsdc({ rpcUrl: rpc, to: someone, amount: 123_000_000n });
    await expect(startStack({ dataDir, env })).rejects.toThrow(/already running|another start/);
    await stack.stop();

    stack = await startStack({ dataDir, env });
    expect(await balanceOf(stack.endpoints.devnet?.rpcUrl as string)).toBe(123_000_000n);
    await stack.stop();

    stack = await startStack({ dataDir, env, fresh: true });
    expect(await balanceOf(stack.endpoints.devnet?.rpcUrl as string)).toBe(0n);
    await stack.stop();
  });

  it('--demo runs the demo model server and hands every service its URL and the LLM proxy URL', async () => {
    const dataDir = await tempDir();
    const env = { ...process.env, ...(await ports()) };
    const stack = await startStack({ dataDir, env, demo: true, only: ['demo-model', 'platform-api'] });
    try {
      const demo = stack.endpoints.services['demo-model'];
      expect(demo?.url).toBe(`http://127.0.0.1:${env.DEMO_MODEL_PORT}`);
      const proxy = `http://127.0.0.1:${env.LLM_PROXY_PORT}`;
      // The platform API got DEMO_MODEL_URL (its proxy reports the demo upstream) …
      expect(await (await fetch(`${proxy}/health`)).json()).toMatchObject({ status: 'ok', demo: true });
      // … and every service got LLM_PROXY_URL and DEMO_MODEL_URL (read from the processes' own environment).
      for (const name of ['demo-model', 'platform-api']) {
        const environ = (await readFile(`/proc/${stack.endpoints.services[name]?.pid}/environ`, 'utf8')).split('\0');
        expect(environ).toContain(`LLM_PROXY_URL=${proxy}`);
        expect(environ).toContain(`DEMO_MODEL_URL=${demo?.url}`);
      }
      const answer = await fetch(`${demo?.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hello' }] }),
      });
      expect(((await answer.json()) as any).choices[0].message.content).toMatch(/demo model/);
    } finally {
      await stack.stop();
    }
    // Without --demo the demo model does not run.
    expect(discoverServices().find((s) => s.service === 'demo-model')?.when).toBe('demo');
  });

  it('names the variable when a port is taken', async () => {
    const dataDir = await tempDir();
    const blocker = (await import('node:net')).createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    try {
      await expect(
        startStack({ dataDir, env: { ...process.env, ...(await ports()), FACILITATOR_PORT: String(port) } }),
      ).rejects.toThrow('FACILITATOR_PORT');
    } finally {
      blocker.close();
    }
    // Nothing of the failed start is left running.
    expect(existsSync(join(dataDir, 'endpoints.json'))).toBe(false);
  });
});
