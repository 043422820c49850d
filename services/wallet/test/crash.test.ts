import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fundUsdc, testUsdcAbi } from '@agentstack/chain';
import { freePort, type ManagedProcess, startProcess, waitFor, waitForHttp } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import { createPublicClient, http, parseEventLogs } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateWalletDatabase } from '../src/service.js';

/**
 * The journal's promise, tested on the real process: SIGKILL between submit and confirm (and between intent
 * and submit), restart, and exactly one transfer happens, with the journal saying confirmed.
 */
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
let bed: PaymentTestbed;
let database: TestDatabase<unknown>;
let dataDir: string;
let env: Record<string, string>;
let url: string;
const running: ManagedProcess[] = [];

beforeAll(async () => {
  bed = await startPaymentTestbed();
  database = await createTestDatabase();
  await migrateWalletDatabase(database.url);
  dataDir = await mkdtemp(join(tmpdir(), 'wallet-crash-'));
  await chmod(dataDir, 0o700);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  env = {
    PATH: process.env.PATH ?? '',
    WALLET_PORT: String(port),
    DATABASE_URL: database.url,
    CHAIN: 'devnet',
    BASE_RPC_URL: bed.devnet.rpcUrl,
    FACILITATOR_URL: bed.facilitatorUrl,
    PAY_TO_ADDRESS: privateKeyToAccount(generatePrivateKey()).address,
    SERVICE_DATA_DIR: dataDir,
    WALLET_IDEMPOTENCY_LEASE_MS: '1500',
    LOG_LEVEL: 'warn',
  };
});

afterAll(async () => {
  for (const proc of running) await proc.stop(2_000);
  await database?.drop();
  await bed?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function startService(extra: Record<string, string> = {}): Promise<ManagedProcess> {
  const proc = startProcess(process.execPath, ['--import', import.meta.resolve('tsx'), main, 'serve'], {
    env: { ...env, ...extra },
  });
  running.push(proc);
  try {
    await Promise.race([
      waitForHttp(`${url}/v1/health`, 60_000),
      proc.exited.then((code) => {
        throw new Error(`wallet exited with ${code}`);
      }),
    ]);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  return proc;
}

async function journal(wallet: string) {
  const { rows } = await database.pool.query(
    `SELECT id, status, tx_hash FROM journal WHERE wallet = $1 AND kind = 'send' ORDER BY created_at`,
    [wallet],
  );
  return rows as { id: string; status: string; tx_hash: string | null }[];
}

/** Every USDC Transfer from `from` to `to` on the whole chain. */
async function transfers(from: `0x${string}`, to: `0x${string}`) {
  const client = createPublicClient({ chain: bed.devnet.chain.viemChain, transport: http(bed.devnet.rpcUrl) });
  const logs = await client.getLogs({ address: bed.devnet.usdc, fromBlock: 0n, toBlock: 'latest' });
  return parseEventLogs({ abi: testUsdcAbi, logs, eventName: 'Transfer' }).filter(
    (l) => l.args.from === from && l.args.to === to,
  );
}

async function walletWithOwner() {
  const owner = await bed.fundedAccount(10_000_000n);
  const client = bed.payingFetch(owner);
  const created = (await (
    await fetch(`${url}/v1/wallets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  ).json()) as { address: `0x${string}`; claimToken: string };
  const claim = await client.fetch(`${url}/v1/wallets/${created.address}`, {
    headers: { 'x-claim-token': created.claimToken },
  });
  expect(claim.status).toBe(200);
  await fundUsdc({ rpcUrl: bed.devnet.rpcUrl, to: created.address, amount: 5_000_000n });
  return { client, wallet: created.address };
}

describe.each(['after-submit', 'after-intent'] as const)('kill -9 of the service %s', (point) => {
  it('restarts, reconciles, and exactly one transfer happens; a retry of the same request does not send again', async () => {
    const proc = await startService({ WALLET_TEST_PAUSE_AT: point });
    const { client, wallet } = await walletWithOwner();
    const to = privateKeyToAccount(generatePrivateKey()).address;
    const send = () =>
      client.fetch(`${url}/v1/wallets/${wallet}/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `crash-${point}` },
        body: JSON.stringify({ to, amount: '1.5' }),
      });
    const inFlight = send().catch((err: Error) => err);
    await waitFor(() => proc.output().includes(`WALLET_TEST_PAUSED ${point}`), {
      timeoutMs: 30_000,
      what: 'the service to reach the test pause point',
    });
    process.kill(proc.pid, 'SIGKILL');
    await proc.exited;
    expect(await inFlight).toBeInstanceOf(Error); // the client saw the connection die
    const left = await journal(wallet);
    expect(left).toHaveLength(1);
    expect(left[0]!.status).toBe(point === 'after-submit' ? 'submitted' : 'intent');

    const restarted = await startService();
    const [entry] = await journal(wallet);
    expect(entry!.status).toBe('confirmed');
    expect((await transfers(wallet, to)).length).toBe(1);
    expect(await bed.balance(to)).toBe(1_500_000n);
    expect(entry!.tx_hash).toBe((await transfers(wallet, to))[0]!.transactionHash);

    // The client retries with the same key once the dead request's lease ran out: the same entry, no second send.
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    const retry = await send();
    expect(retry.status).toBe(200);
    expect(((await retry.json()) as { id: string }).id).toBe(entry!.id);
    expect((await transfers(wallet, to)).length).toBe(1);
    expect(await journal(wallet)).toHaveLength(1);
    await restarted.stop(5_000);
  });
});
