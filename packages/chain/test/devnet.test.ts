import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProcessRunning as alive, freePort } from '@agentstack/core';
import { createPublicClient, createWalletClient, encodeFunctionData, hexToBigInt, http, zeroAddress } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASE_USDC_ADDRESS,
  type Devnet,
  fundEth,
  fundUsdc,
  isDevnetRpc,
  MULTICALL3_ADDRESS,
  multicall3Abi,
  multicall3Bytecode,
  NotDevnetError,
  resolveChain,
  startDevnet,
  testUsdcAbi,
  testUsdcBytecode,
  usdcBalance,
} from '../src/index.js';

let devnet: Devnet;
let client: ReturnType<typeof clientFor>;
const dirs: string[] = [];

const clientFor = (d: Devnet) =>
  createPublicClient({ chain: d.chain.viemChain, transport: http(d.rpcUrl), pollingInterval: 50 });

beforeAll(async () => {
  devnet = await startDevnet();
  client = clientFor(devnet);
});

afterAll(async () => {
  await devnet?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('startDevnet', () => {
  it('is a Base look-alike: chain id 8453, token and Multicall3 at the canonical addresses', async () => {
    expect(devnet.chainId).toBe(8453);
    expect(await client.getChainId()).toBe(8453);
    expect(devnet.chain).toMatchObject({ name: 'devnet', id: 8453, network: 'eip155:8453', isDevnet: true });
    expect(devnet.chain.usdc).toEqual({ address: BASE_USDC_ADDRESS, name: 'USD Coin', version: '2', decimals: 6 });
    expect(await client.getCode({ address: BASE_USDC_ADDRESS })).toBe(testUsdcBytecode.deployedBytecode);
    expect(await client.getCode({ address: MULTICALL3_ADDRESS })).toBe(multicall3Bytecode.deployedBytecode);
    const owner = await client.readContract({ address: devnet.usdc, abi: testUsdcAbi, functionName: 'owner' });
    expect(owner).toBe(devnet.accounts.faucet.address);
  });

  it('hands out only anvil’s well-known accounts, whose keys match their addresses', async () => {
    const nodeAccounts = await createWalletClient({ transport: http(devnet.rpcUrl) }).getAddresses();
    for (const account of Object.values(devnet.accounts)) {
      expect(privateKeyToAccount(account.privateKey).address).toBe(account.address);
      expect(nodeAccounts.map((a) => a.toLowerCase())).toContain(account.address.toLowerCase());
    }
  });

  it("serves viem's multicall (aggregate3) and the facilitator's tryAggregate / getEthBalance", async () => {
    const holder = privateKeyToAccount(generatePrivateKey()).address;
    await fundUsdc({ rpcUrl: devnet.rpcUrl, to: holder, amount: 3_000_000n });
    const results = await client.multicall({
      contracts: [
        { address: devnet.usdc, abi: testUsdcAbi, functionName: 'balanceOf', args: [holder] },
        { address: devnet.usdc, abi: testUsdcAbi, functionName: 'name' },
        { address: devnet.usdc, abi: testUsdcAbi, functionName: 'transferFrom', args: [holder, holder, 1n] },
      ],
    });
    expect(results[0]).toEqual({ status: 'success', result: 3_000_000n });
    expect(results[1]).toEqual({ status: 'success', result: 'USD Coin' });
    expect(results[2]?.status).toBe('failure');

    // tryAggregate is payable in Multicall3's ABI, so viem only lets us simulate it (as an eth_call).
    const { result } = await client.simulateContract({
      address: MULTICALL3_ADDRESS,
      abi: multicall3Abi,
      functionName: 'tryAggregate',
      args: [
        false,
        [
          { target: devnet.usdc, callData: encodeFunctionData({ abi: testUsdcAbi, functionName: 'decimals' }) },
          { target: devnet.usdc, callData: '0x70a08231' }, // balanceOf() without its argument: reverts
        ],
      ],
    });
    expect(result.map((r) => r.success)).toEqual([true, false]);
    expect(hexToBigInt(result[0]!.returnData)).toBe(6n);
    const eth = await client.readContract({
      address: MULTICALL3_ADDRESS,
      abi: multicall3Abi,
      functionName: 'getEthBalance',
      args: [devnet.accounts.gas.address],
    });
    expect(eth).toBe(await client.getBalance({ address: devnet.accounts.gas.address }));
  });
});

describe('faucet', () => {
  it('mints USDC and adds ETH, also when called concurrently', async () => {
    const to = privateKeyToAccount(generatePrivateKey()).address;
    await Promise.all([1n, 2n, 3n, 4n].map((n) => fundUsdc({ rpcUrl: devnet.rpcUrl, to, amount: n * 1_000_000n })));
    expect(await usdcBalance(client, to, devnet.usdc)).toBe(10_000_000n);

    await fundEth({ rpcUrl: devnet.rpcUrl, to, amount: 5n });
    const { balance } = await fundEth({ rpcUrl: devnet.rpcUrl, to, amount: 7n });
    expect(balance).toBe(12n);
    expect(await client.getBalance({ address: to })).toBe(12n);
    await expect(fundUsdc({ rpcUrl: devnet.rpcUrl, to, amount: 0n })).rejects.toThrow('positive');
  });

  it('refuses a node that is not anvil, and says why', async () => {
    // A JSON-RPC endpoint that introduces itself as geth: the faucet must not even try.
    const { server, url } = await jsonRpcServer((method) =>
      method === 'web3_clientVersion'
        ? { result: 'Geth/v1.14.0-stable/linux-amd64/go1.22' }
        : { error: { code: -32601, message: 'no' } },
    );
    try {
      expect(await isDevnetRpc(url)).toBe(false);
      await expect(fundUsdc({ rpcUrl: url, to: zeroAddress, amount: 1n })).rejects.toBeInstanceOf(NotDevnetError);
      await expect(fundEth({ rpcUrl: url, to: zeroAddress, amount: 1n })).rejects.toThrow('is not an anvil devnet');
    } finally {
      server.close();
    }
    expect(await isDevnetRpc(devnet.rpcUrl)).toBe(true);
    // Nothing listening: that is an error to report, not a "no".
    await expect(isDevnetRpc(`http://127.0.0.1:${await freePort()}`)).rejects.toThrow();
  });
});

describe('restarts and stopping', () => {
  it('keeps balances across a restart from statePath, and leaves no anvil process behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentstack-devnet-'));
    dirs.push(dir);
    const statePath = join(dir, 'state', 'chain.json');
    const holder = privateKeyToAccount(generatePrivateKey()).address;

    const first = await startDevnet({ statePath });
    await fundUsdc({ rpcUrl: first.rpcUrl, to: holder, amount: 123_456n });
    await first.stop();
    expect(alive(first.pid)).toBe(false);

    const lines: string[] = [];
    const second = await startDevnet({ statePath, log: (line) => lines.push(line) });
    try {
      const c = clientFor(second);
      expect(await usdcBalance(c, holder, second.usdc)).toBe(123_456n);
      // Placed once: the restart found the token initialized and did not send initialize again.
      expect(await c.getTransactionCount({ address: second.accounts.deployer.address })).toBe(1);
      expect(lines.join('\n')).toContain('Listening on');
    } finally {
      await second.stop();
    }
    expect(alive(second.pid)).toBe(false);
  });

  it("fails with anvil's own words when the port is taken", async () => {
    await expect(startDevnet({ port: Number(new URL(devnet.rpcUrl).port) })).rejects.toThrow('Address already in use');
  });

  it('places the contracts with interval mining too', async () => {
    const slow = await startDevnet({ blockTime: 1 });
    try {
      const owner = await clientFor(slow).readContract({ address: slow.usdc, abi: testUsdcAbi, functionName: 'owner' });
      expect(owner).toBe(slow.accounts.faucet.address);
    } finally {
      await slow.stop();
    }
    expect(alive(slow.pid)).toBe(false);
  });
});

describe('resolveChain', () => {
  it('knows Base and Base Sepolia, and needs an rpcUrl for the devnet', () => {
    expect(resolveChain({ name: 'base' })).toMatchObject({
      id: 8453,
      network: 'eip155:8453',
      isDevnet: false,
      usdc: { address: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', name: 'USD Coin', version: '2', decimals: 6 },
    });
    const sepolia = resolveChain({ name: 'base-sepolia', rpcUrl: 'https://rpc.example/sepolia' });
    expect(sepolia).toMatchObject({
      id: 84532,
      network: 'eip155:84532',
      rpcUrl: 'https://rpc.example/sepolia',
      usdc: { address: '0x036CbD53842c5426634e7929541eC2318f3dCF7e', name: 'USDC', version: '2', decimals: 6 },
    });
    expect(sepolia.viemChain.rpcUrls.default.http).toEqual(['https://rpc.example/sepolia']);
    expect(() => resolveChain({ name: 'devnet' })).toThrow('rpcUrl');
    expect(() => resolveChain({ name: 'mainnet' as never })).toThrow('unknown chain');
  });
});

function jsonRpcServer(answer: (method: string) => object): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const { id, method } = JSON.parse(body) as { id: number; method: string };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ jsonrpc: '2.0', id, ...answer(method) }));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` });
    }),
  );
}
