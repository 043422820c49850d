import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployUniswapV2, fundEth, fundUsdc, type UniswapV2Deployment } from '@agentstack/chain';
import { type Clock, createLogger, type RunningServer } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import type { PayingFetch } from '@agentstack/x402';
import { listen, type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import { createPublicClient, http } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { loadWalletConfig } from '../src/config.js';
import type { Mailer, TestHooks } from '../src/context.js';
import { createWalletService, migrateWalletDatabase, type WalletService } from '../src/service.js';

/** Real time shifted by an offset a test controls (expiry, day boundaries) without freezing it. */
export class ShiftedClock implements Clock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface WalletBed {
  bed: PaymentTestbed;
  uniswap: UniswapV2Deployment;
  database: TestDatabase<unknown>;
  service: WalletService;
  server: RunningServer;
  url: string;
  payTo: `0x${string}`;
  clock: ShiftedClock;
  hooks: TestHooks;
  /** Every log line the service wrote (to check that no secret ever appears). */
  logs: string[];
  publicClient: ReturnType<typeof createPublicClient>;
  /** Builds another service on the same chain and database (e.g. with different settings). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface BedOptions {
  env?: Record<string, string>;
  mailer?: Mailer;
  resolve?: Parameters<typeof createWalletService>[1] extends infer O
    ? O extends { resolve?: infer R }
      ? R
      : never
    : never;
  /** Reuse a running chain + facilitator (several services in one file). */
  shared?: { bed: PaymentTestbed; uniswap: UniswapV2Deployment };
}

/** A devnet with Uniswap, the official facilitator over HTTP, a fresh database, and wallet.sh listening. */
export async function startWalletBed(options: BedOptions = {}): Promise<WalletBed> {
  const bed = options.shared?.bed ?? (await startPaymentTestbed());
  const uniswap = options.shared?.uniswap ?? (await deployUniswapV2({ rpcUrl: bed.devnet.rpcUrl }));
  const database = await createTestDatabase();
  await migrateWalletDatabase(database.url);
  const dataDir = await mkdtemp(join(tmpdir(), 'wallet-test-'));
  await chmod(dataDir, 0o700);
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    CHAIN: 'devnet',
    BASE_RPC_URL: bed.devnet.rpcUrl,
    FACILITATOR_URL: bed.facilitatorUrl,
    PAY_TO_ADDRESS: payTo,
    SERVICE_DATA_DIR: dataDir,
    WALLET_PAY_ALLOW_HOSTS: '127.0.0.1',
    WALLET_CREATE_LIMIT: '10000',
    WALLET_CONFIRM_TIMEOUT_MS: '15000',
    LOG_LEVEL: 'debug',
    ...options.env,
  };
  const logs: string[] = [];
  const log = createLogger({
    name: 'wallet',
    level: 'debug',
    destination: { write: (line: string) => void logs.push(line) },
  });
  const clock = new ShiftedClock();
  const hooks: TestHooks = {};
  const service = await createWalletService(loadWalletConfig(env), {
    log,
    clock,
    hooks,
    ...(options.mailer ? { mailer: options.mailer } : {}),
    ...(options.resolve ? { resolve: options.resolve } : {}),
  });
  const server = await listen(service.app);
  const publicClient = createPublicClient({ chain: bed.devnet.chain.viemChain, transport: http(bed.devnet.rpcUrl) });
  return {
    bed,
    uniswap,
    database,
    service,
    server,
    url: server.url,
    payTo,
    clock,
    hooks,
    logs,
    publicClient,
    env,
    async stop() {
      await server.close();
      await service.stop();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
      if (!options.shared) await bed.stop();
    },
  };
}

export interface CreatedWallet {
  address: `0x${string}`;
  claimToken: string;
  agentToken: string;
  [key: string]: unknown;
}

export async function createWallet(w: WalletBed, body: Record<string, unknown> = {}): Promise<CreatedWallet> {
  const res = await fetch(`${w.url}/v1/wallets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as CreatedWallet;
}

export interface Owner {
  account: PrivateKeyAccount;
  client: PayingFetch;
  /** JSON request through the official @x402/fetch client. */
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function makeOwner(w: WalletBed, usdc = 50_000_000n): Promise<Owner> {
  const account = await w.bed.fundedAccount(usdc);
  const client = w.bed.payingFetch(account);
  return {
    account,
    client,
    async call(method, path, body, headers = {}) {
      const res = await client.fetch(`${w.url}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // plain text
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
  };
}

/** A created wallet claimed by a funded owner (through a paid GET carrying X-Claim-Token). */
export async function ownedWallet(w: WalletBed, owner?: Owner, body: Record<string, unknown> = {}) {
  const o = owner ?? (await makeOwner(w));
  const wallet = await createWallet(w, body);
  const res = await o.call('GET', `/v1/wallets/${wallet.address}`, undefined, { 'x-claim-token': wallet.claimToken });
  if (res.status !== 200) throw new Error(`claim answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { owner: o, wallet };
}

/** A request as the agent: Authorization: Bearer, no payment header (the wallet pays its own fee). */
export async function agentCall(
  w: WalletBed,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${w.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export const fund = (w: WalletBed, to: `0x${string}`, usdc: bigint) =>
  fundUsdc({ rpcUrl: w.bed.devnet.rpcUrl, to, amount: usdc });
export const fundEthTo = (w: WalletBed, to: `0x${string}`, wei: bigint) =>
  fundEth({ rpcUrl: w.bed.devnet.rpcUrl, to, amount: wei });
export const ethBalance = (w: WalletBed, address: `0x${string}`) => w.publicClient.getBalance({ address });
