import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { DEVNET_ACCOUNTS, type Devnet, fundUsdc, startDevnet, usdcBalance } from '@agentstack/chain';
import { type ManagedProcess, startProcess, waitFor } from '@agentstack/core';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '@agentstack/db';
import { createPublicClient, http } from 'viem';
import { type Endpoints, isAlive, readEndpoints, removeEndpoints, writeEndpoints } from './endpoints.js';
import { discoverServices, envPrefix, type ServiceManifest } from './manifest.js';

export interface StartOptions {
  dataDir: string;
  /** Wipe the data directory first (database, devnet state, keys). */
  fresh?: boolean;
  /** Run the offline demo (fixture model server as the LLM upstream). */
  demo?: boolean;
  /** Only these services (and what they need: database, devnet). Default: all. */
  only?: string[];
  env?: Record<string, string | undefined>;
  /** Progress lines for the terminal. */
  say?: (line: string) => void;
}

export interface RunningStack {
  endpoints: Endpoints;
  /** Stops every process this start launched (services, devnet, database) and removes the endpoints file. */
  stop(): Promise<void>;
}

/** USDC the devnet's demo payer account gets on a fresh chain. */
const DEV_PAYER_USDC = 1_000_000_000n;

/** The tsx loader, so services run from TypeScript source with plain `node --import`. */
const tsxLoader = import.meta.resolve('tsx');

export async function startStack(options: StartOptions): Promise<RunningStack> {
  const env = options.env ?? process.env;
  const say = options.say ?? (() => {});
  const dataDir = resolve(options.dataDir);
  const running = await readEndpoints(dataDir);
  if (running) throw new Error(`a stack is already running on ${dataDir} (pid ${running.pid}); stop it first`);
  if (options.fresh) {
    say(`› --fresh: removing ${dataDir}`);
    await rm(dataDir, { recursive: true, force: true });
  }
  await mkdir(join(dataDir, 'logs'), { recursive: true });
  const releaseLock = await takeLock(dataDir);

  const started: { name: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    for (const item of started.reverse()) {
      await item.stop().catch((err) => say(`! stopping ${item.name}: ${(err as Error).message}`));
    }
    started.length = 0;
    await removeEndpoints(dataDir);
    await releaseLock();
  };

  try {
    const services = discoverServices().filter(
      (s) =>
        (s.when === 'always' || options.demo) &&
        (!options.only || options.only.includes(s.service)) &&
        !(s.service === 'facilitator' && env.FACILITATOR_URL),
    );
    const endpoints: Endpoints = { startedAt: new Date().toISOString(), pid: process.pid, dataDir, services: {} };

    // Infrastructure first: PostgreSQL and the devnet start in parallel.
    const wantedDatabases = services.flatMap((s) =>
      s.database && !env[`${envPrefix(s.service)}_DATABASE_URL`] ? [s.database] : [],
    );
    const useDevnet = (env.CHAIN ?? 'devnet') === 'devnet';
    const [pg, devnet] = await Promise.all([
      // The database runs even when no service needs one yet: tools and the endpoints file expect it.
      wantedDatabases.length > 0 || !services.some((s) => s.database)
        ? startDatabase(dataDir, wantedDatabases, env, say)
        : undefined,
      useDevnet ? startChain(dataDir, env, say) : undefined,
    ]);
    if (pg) {
      started.push({ name: 'postgres', stop: () => pg.stop() });
      endpoints.database = {
        host: pg.host,
        port: pg.port,
        pid: pg.pid,
        urls: Object.fromEntries(wantedDatabases.map((d) => [d, pg.urlFor(d)])),
      };
    }
    if (devnet) {
      started.push({ name: 'devnet', stop: () => devnet.stop() });
      endpoints.devnet = {
        rpcUrl: devnet.rpcUrl,
        chainId: devnet.chainId,
        usdc: devnet.usdc,
        pid: devnet.pid,
        ...(devnet.uniswap ? { uniswap: devnet.uniswap } : {}),
      };
    }

    // Every service learns every other service's URL up front, so start order only matters for readiness.
    const ports = new Map<string, number>();
    for (const service of services) {
      const port = Number(env[service.port.env] ?? service.port.default);
      await assertPortFree(port, service.port.env);
      for (const extra of service.extraPorts) await assertPortFree(Number(env[extra.env] ?? extra.default), extra.env);
      ports.set(service.service, port);
    }
    const shared: Record<string, string> = {
      CHAIN: env.CHAIN ?? 'devnet',
      AGENTSTACK_DATA_DIR: dataDir,
      AGENTSTACK_DEMO: options.demo ? 'true' : 'false',
      LOG_LEVEL: env.LOG_LEVEL ?? 'info',
    };
    if (devnet) shared.BASE_RPC_URL = devnet.rpcUrl;
    if (devnet) shared.PAY_TO_ADDRESS = env.PAY_TO_ADDRESS ?? DEVNET_ACCOUNTS.payee.address;
    for (const service of services) {
      shared[service.urlEnv] = `http://127.0.0.1:${ports.get(service.service)}`;
      for (const extra of service.extraPorts) {
        if (extra.urlEnv) shared[extra.urlEnv] = `http://127.0.0.1:${Number(env[extra.env] ?? extra.default)}`;
      }
    }

    const groups = [...new Set(services.map((s) => s.order))];
    for (const order of groups) {
      const group = services.filter((s) => s.order === order);
      const launched = await Promise.all(
        group.map((service) =>
          launchService(service, {
            port: ports.get(service.service) as number,
            dataDir,
            env: {
              ...shared,
              ...stringEnv(env),
              ...(service.database
                ? {
                    DATABASE_URL:
                      env[`${envPrefix(service.service)}_DATABASE_URL`] ?? pg?.urlFor(service.database) ?? '',
                  }
                : {}),
            },
          }),
        ),
      );
      for (const item of launched) {
        started.push({ name: item.service.service, stop: () => item.process.stop(10_000) });
        endpoints.services[item.service.service] = {
          url: item.url,
          pid: item.process.pid,
          log: item.log,
          ...(item.extraPorts ? { ports: item.extraPorts } : {}),
        };
        if (item.service.service === 'facilitator') endpoints.facilitator = { url: item.url };
        const extraUrls = item.service.extraPorts
          .filter((e) => e.urlEnv)
          .map((e) => `  ${e.label} ${shared[e.urlEnv as string]}`)
          .join('');
        say(`✓ ${item.service.title.padEnd(24)} ${item.url}${extraUrls}`);
      }
    }
    if (env.FACILITATOR_URL) endpoints.facilitator = { url: env.FACILITATOR_URL };
    await writeEndpoints(dataDir, endpoints);
    return { endpoints, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function startDatabase(
  dataDir: string,
  databases: string[],
  env: Record<string, string | undefined>,
  say: (line: string) => void,
): Promise<EmbeddedPostgres> {
  const pg = await startEmbeddedPostgres({
    dataDir: join(dataDir, 'postgres'),
    databases,
    ...(env.POSTGRES_PORT ? { port: Number(env.POSTGRES_PORT) } : {}),
  });
  say(`✓ ${'PostgreSQL (embedded)'.padEnd(24)} 127.0.0.1:${pg.port}  databases: ${databases.join(', ')}`);
  return pg;
}

async function startChain(
  dataDir: string,
  env: Record<string, string | undefined>,
  say: (line: string) => void,
): Promise<Devnet> {
  const port = Number(env.DEVNET_PORT ?? 8545);
  await assertPortFree(port, 'DEVNET_PORT');
  // Uniswap V2 (for wallet.sh's swaps) is deployed once and then lives in the saved devnet state.
  const devnet = await startDevnet({ port, statePath: join(dataDir, 'devnet', 'state.json'), uniswap: true });
  // A fresh chain gets a funded demo payer; a reused one keeps whatever balances it had.
  const client = createPublicClient({ chain: devnet.chain.viemChain, transport: http(devnet.rpcUrl) });
  if ((await usdcBalance(client, DEVNET_ACCOUNTS.payer.address, devnet.usdc)) === 0n) {
    await fundUsdc({ rpcUrl: devnet.rpcUrl, to: DEVNET_ACCOUNTS.payer.address, amount: DEV_PAYER_USDC });
  }
  say(`✓ ${'Devnet (anvil, Base-shaped)'.padEnd(24)} ${devnet.rpcUrl}  chain id ${devnet.chainId}`);
  return devnet;
}

interface Launched {
  service: ServiceManifest;
  process: ManagedProcess;
  url: string;
  log: string;
  extraPorts?: Record<string, number>;
}

async function launchService(
  service: ServiceManifest,
  { port, dataDir, env }: { port: number; dataDir: string; env: Record<string, string> },
): Promise<Launched> {
  const log = join(dataDir, 'logs', `${service.service}.log`);
  const fd = openSync(log, 'a');
  const extraPorts: Record<string, number> = {};
  for (const extra of service.extraPorts) extraPorts[extra.label] = Number(env[extra.env] ?? extra.default);
  const childEnv = {
    ...service.env,
    ...env,
    [service.port.env]: String(port),
    SERVICE_DATA_DIR: join(dataDir, service.service),
    ...Object.fromEntries(service.extraPorts.map((e) => [e.env, String(extraPorts[e.label])])),
  };
  await mkdir(childEnv.SERVICE_DATA_DIR, { recursive: true });
  const [command, ...args] = service.command
    ? service.command.map((part) => part.replace('{port}', String(port)))
    : [process.execPath, '--import', tsxLoader, join(service.dir, service.main), 'serve'];
  const proc = startProcess(command as string, args, { cwd: service.dir, env: childEnv, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([
      waitFor(
        async () => {
          const res = await fetch(`${url}${service.health}`, { signal: AbortSignal.timeout(2_000) });
          return res.ok;
        },
        {
          timeoutMs: service.startTimeoutMs,
          intervalMs: 150,
          what: `${service.service} health at ${url}${service.health}`,
        },
      ),
      proc.exited.then((code) => {
        throw new Error(`${service.service} exited during start (code ${code})`);
      }),
    ]);
  } catch (err) {
    await proc.stop(2_000);
    const tail = readFileSync(log, 'utf8').split('\n').slice(-25).join('\n');
    throw new Error(`${(err as Error).message}\n--- last lines of ${log} ---\n${tail}`);
  }
  return { service, process: proc, url, log, ...(service.extraPorts.length ? { extraPorts } : {}) };
}

function stringEnv(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

function assertPortFree(port: number, variable: string): Promise<void> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', () =>
      reject(new Error(`port ${port} is in use (set ${variable} to another port, or stop what holds it)`)),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolvePort()));
  });
}

/** One `start` per data directory: a second one would fight over the database and the devnet state. */
async function takeLock(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, 'stack.lock');
  try {
    await writeFile(path, String(process.pid), { flag: 'wx' });
  } catch {
    const holder = Number((await readFile(path, 'utf8').catch(() => '0')).trim());
    if (holder && holder !== process.pid && isAlive(holder)) {
      throw new Error(`another start (pid ${holder}) is using ${dataDir}`);
    }
    await writeFile(path, String(process.pid));
  }
  return () => rm(path, { force: true });
}
