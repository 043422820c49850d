#!/usr/bin/env tsx
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEVNET_ACCOUNTS, fundEth, fundUsdc, isDevnetRpc } from '@agentstack/chain';
import { parseUsdc, startProcess } from '@agentstack/core';
import { startEmbeddedPostgres } from '@agentstack/db';
import { getAddress, isAddress, parseEther } from 'viem';
import { readEndpoints } from './endpoints.js';
import { discoverServices, envPrefix, repoRoot } from './manifest.js';
import { startStack } from './start.js';

const USAGE = `usage: pnpm stack <command>

  start [--fresh] [--demo] [--only a,b] [--data-dir DIR]   start everything; Ctrl-C stops it
  status [--data-dir DIR]                                    what is running, and is it healthy
  faucet <address> <amount> [--eth] [--data-dir DIR]         devnet only: mint test USDC (or ETH)
  db:migrate [--data-dir DIR]                                apply every service's migrations
  db:seed [--data-dir DIR]                                   insert each service's seed data

Data directory: $AGENTSTACK_DATA_DIR, default ./.data`;

const defaultDataDir = () => resolve(process.env.AGENTSTACK_DATA_DIR ?? resolve(repoRoot, '.data'));

async function main() {
  const [command, ...rest] = process.argv.slice(2);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      fresh: { type: 'boolean', default: false },
      demo: { type: 'boolean', default: false },
      eth: { type: 'boolean', default: false },
      only: { type: 'string' },
      'data-dir': { type: 'string' },
    },
  });
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  switch (command) {
    case 'start':
      return start(dataDir, values.fresh ?? false, values.demo ?? false, values.only);
    case 'status':
      return status(dataDir);
    case 'faucet':
      return faucet(dataDir, positionals, values.eth ?? false);
    case 'db:migrate':
    case 'db:seed':
      return runEveryService(dataDir, command === 'db:migrate' ? 'migrate' : 'seed');
    default:
      console.log(USAGE);
      process.exit(command ? 2 : 0);
  }
}

async function start(dataDir: string, fresh: boolean, demo: boolean, only?: string) {
  const began = Date.now();
  console.log(`Starting AgentStack + AgentSquads (data: ${dataDir})${demo ? ' — demo mode' : ''}\n`);
  const stack = await startStack({
    dataDir,
    fresh,
    demo,
    ...(only ? { only: only.split(',') } : {}),
    say: (line) => console.log(line),
  });
  const e = stack.endpoints;
  console.log(`\nUp in ${((Date.now() - began) / 1000).toFixed(1)} s. Endpoints: ${dataDir}/endpoints.json`);
  console.log(`Logs: ${dataDir}/logs/<service>.log`);
  printDevCredentials(dataDir, Object.keys(e.services));
  if (e.devnet) {
    console.log('\nDevnet accounts (well-known test keys — DEVNET ONLY; the chain mimics Base, never fund these):');
    console.log(`  payer  ${DEVNET_ACCOUNTS.payer.address}  key ${DEVNET_ACCOUNTS.payer.privateKey}`);
    console.log(`  payee  ${DEVNET_ACCOUNTS.payee.address}  (receives every service's x402 payments)`);
    console.log('Fund any address:  pnpm stack faucet <address> <usdc>   (add --eth for ETH)');
  }
  console.log('\nCtrl-C stops everything.');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    await stack.stop();
    console.log('Stopped.');
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Keep the process alive until a signal arrives.
  setInterval(() => {}, 1 << 30);
}

/** A service may leave local-only credentials (e.g. a dev admin) in `<data dir>/<service>/dev-credentials.txt`. */
function printDevCredentials(dataDir: string, services: string[]) {
  const files = services.map((name) => join(dataDir, name, 'dev-credentials.txt')).filter((f) => existsSync(f));
  if (files.length === 0) return;
  console.log('\nDev credentials (local development only):');
  for (const file of files) console.log(`  ${readFileSync(file, 'utf8').trim()}`);
}

async function status(dataDir: string) {
  const e = await readEndpoints(dataDir);
  if (!e) {
    console.log(`not running (no live endpoints file in ${dataDir})`);
    process.exit(1);
  }
  console.log(`running since ${e.startedAt} (pid ${e.pid})`);
  if (e.database)
    console.log(`  postgres     127.0.0.1:${e.database.port}  ${Object.keys(e.database.urls).join(', ')}`);
  if (e.devnet) console.log(`  devnet       ${e.devnet.rpcUrl}  chain ${e.devnet.chainId}`);
  const manifests = new Map(discoverServices().map((s) => [s.service, s]));
  let healthy = true;
  for (const [name, service] of Object.entries(e.services)) {
    const path = manifests.get(name)?.health ?? '/v1/health';
    const ok = await fetch(`${service.url}${path}`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.ok)
      .catch(() => false);
    healthy &&= ok;
    console.log(`  ${name.padEnd(12)} ${service.url}  ${ok ? 'healthy' : 'NOT HEALTHY'}  (log ${service.log})`);
  }
  process.exit(healthy ? 0 : 1);
}

async function faucet(dataDir: string, positionals: string[], eth: boolean) {
  const [address, amount] = positionals;
  if (!address || !isAddress(address, { strict: false }) || !amount) {
    console.error('usage: pnpm stack faucet <address> <amount> [--eth]');
    process.exit(2);
  }
  const rpcUrl = process.env.BASE_RPC_URL ?? (await readEndpoints(dataDir))?.devnet?.rpcUrl;
  if (!rpcUrl) {
    console.error('no devnet: start the stack first (or set BASE_RPC_URL to a devnet)');
    process.exit(1);
  }
  if (!(await isDevnetRpc(rpcUrl))) {
    console.error(`${rpcUrl} is not an anvil devnet; the faucet only mints test money`);
    process.exit(1);
  }
  console.warn('warning: this is the local devnet. It mimics Base (chain id 8453, same USDC address), so never sign');
  console.warn('         on it with a key that holds real funds: such a signature would also be valid on Base.');
  const to = getAddress(address);
  if (eth) {
    const { balance } = await fundEth({ rpcUrl, to, amount: parseEther(amount) });
    console.log(`sent ${amount} ETH to ${to} (balance now ${balance} wei)`);
  } else {
    const { hash } = await fundUsdc({ rpcUrl, to, amount: parseUsdc(amount) });
    console.log(`minted ${amount} USDC to ${to} (tx ${hash})`);
  }
}

/**
 * Runs `main.ts migrate` (or `seed`) of every service with a database. Database URLs come from
 * `<SERVICE>_DATABASE_URL`, else the running stack, else an embedded PostgreSQL started for the occasion.
 */
async function runEveryService(dataDir: string, task: 'migrate' | 'seed') {
  const services = discoverServices().filter((s) => s.database);
  const running = await readEndpoints(dataDir);
  const missing = services.filter((s) => !process.env[`${envPrefix(s.service)}_DATABASE_URL`]);
  const needEmbedded = missing.length > 0 && !running?.database;
  const pg = needEmbedded
    ? await startEmbeddedPostgres({
        dataDir: resolve(dataDir, 'postgres'),
        databases: missing.map((s) => s.database as string),
      })
    : undefined;
  let failed = false;
  try {
    for (const service of services) {
      const url =
        process.env[`${envPrefix(service.service)}_DATABASE_URL`] ??
        running?.database?.urls[service.database as string] ??
        pg?.urlFor(service.database as string);
      const proc = startProcess(
        process.execPath,
        ['--import', import.meta.resolve('tsx'), resolve(service.dir, service.main), task],
        {
          cwd: service.dir,
          // The same data directory `start` gives the service (generated secrets, dev credentials).
          env: {
            ...process.env,
            DATABASE_URL: url,
            SERVICE_DATA_DIR: join(dataDir, service.service),
            LOG_LEVEL: 'warn',
          },
          stdio: 'inherit',
        },
      );
      const code = await proc.exited;
      console.log(`${code === 0 ? '✓' : '✗'} ${service.service}: ${task}`);
      failed ||= code !== 0;
    }
  } finally {
    await pg?.stop();
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
