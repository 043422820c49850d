import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { type ManagedProcess, startProcess, waitFor } from '@agentstack/core';
import { type Address, createTestClient, type Hex, http, publicActions, walletActions, zeroAddress } from 'viem';
import { multicall3Bytecode, testUsdcAbi, testUsdcBytecode } from './artifacts.js';
import { BASE_USDC_ADDRESS, type ChainInfo, MULTICALL3_ADDRESS, resolveChain } from './chains.js';
import { DEVNET_ACCOUNTS, DEVNET_MNEMONIC, type DevnetAccounts } from './devnet-accounts.js';
import { deployUniswapV2, type UniswapPoolSeed, type UniswapV2Deployment } from './uniswap.js';

export const DEVNET_CHAIN_ID = 8453;

export { DEVNET_ACCOUNTS, DEVNET_MNEMONIC, type DevnetAccount, type DevnetAccounts } from './devnet-accounts.js';

export interface StartDevnetOptions {
  /** Default: 0, a free port that anvil picks (and reports). */
  port?: number;
  host?: string;
  /** Load chain state from this file if it exists and write it back on stop, so balances survive restarts. */
  statePath?: string;
  /** Seconds between blocks; default: a block per transaction. */
  blockTime?: number;
  /** Receives anvil's output line by line, one line per RPC call included (switched off when absent). */
  log?: (line: string) => void;
  /** Default: the binary shipped in `@foundry-rs/anvil`'s platform package. */
  anvilPath?: string;
  /**
   * Also deploy the real Uniswap V2 (factory, router, WETH9) and seed a USDC/WETH pool. With `statePath` this
   * happens once: a restart finds the contracts in the saved state.
   */
  uniswap?: boolean | { seed?: UniswapPoolSeed };
}

export interface Devnet {
  rpcUrl: string;
  chainId: typeof DEVNET_CHAIN_ID;
  chain: ChainInfo;
  accounts: DevnetAccounts;
  usdc: Address;
  multicall3: Address;
  /** Present when started with `uniswap`. */
  uniswap?: UniswapV2Deployment;
  /** anvil's process id (it is only ever stopped by this id). */
  pid: number;
  /** Stops anvil (which writes `statePath` on the way out) and resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts anvil as a Base look-alike: chain id 8453, the test USDC at Base's USDC address with Base's EIP-712
 * domain, and Multicall3 at its canonical address. With `statePath`, a restart finds everything already placed.
 */
export async function startDevnet(options: StartDevnetOptions = {}): Promise<Devnet> {
  const { port = 0, host = '127.0.0.1', statePath, blockTime, log } = options;
  const anvil = options.anvilPath ?? anvilBinaryPath();
  if (statePath) mkdirSync(dirname(statePath), { recursive: true });

  // Port 0: anvil binds a free port itself and prints it, so no other process can take it in between.
  const args = ['--chain-id', String(DEVNET_CHAIN_ID), '--host', host, '--port', String(port)];
  args.push('--mnemonic', DEVNET_MNEMONIC);
  if (statePath) args.push('--state', statePath);
  if (blockTime !== undefined) args.push('--block-time', String(blockTime));
  const proc = startProcess(anvil, args);
  if (log) forwardLines(proc, log);

  try {
    const rpcUrl = `http://${connectableHost(host)}:${await listeningPort(proc)}`;
    // anvil logs every RPC call; without a reader that is only noise (and `--silent` would hide the port).
    if (!log) await createTestClient({ mode: 'anvil', transport: http(rpcUrl) }).setLoggingEnabled(false);
    await placeContracts(rpcUrl, blockTime !== undefined);
    const uniswap = options.uniswap
      ? await deployUniswapV2({
          rpcUrl,
          ...(typeof options.uniswap === 'object' && options.uniswap.seed ? { seed: options.uniswap.seed } : {}),
        })
      : undefined;
    return {
      ...(uniswap ? { uniswap } : {}),
      rpcUrl,
      chainId: DEVNET_CHAIN_ID,
      chain: resolveChain({ name: 'devnet', rpcUrl }),
      accounts: DEVNET_ACCOUNTS,
      usdc: BASE_USDC_ADDRESS,
      multicall3: MULTICALL3_ADDRESS,
      pid: proc.pid,
      stop: () => proc.stop(),
    };
  } catch (err) {
    await proc.stop(1_000);
    throw err;
  }
}

/** Absolute path of the anvil binary inside the platform package that `@foundry-rs/anvil` depends on. */
export function anvilBinaryPath(): string {
  const platforms: Record<string, string> = {
    'linux-x64': 'linux-amd64',
    'linux-arm64': 'linux-arm64',
    'darwin-x64': 'darwin-amd64',
    'darwin-arm64': 'darwin-arm64',
  };
  const platform = platforms[`${process.platform}-${process.arch}`];
  if (!platform) throw new Error(`anvil: no binary for ${process.platform}-${process.arch}`);
  // The platform package is a dependency of @foundry-rs/anvil, so resolve it from there (pnpm does not hoist it).
  const fromWrapper = createRequire(createRequire(import.meta.url).resolve('@foundry-rs/anvil/package.json'));
  return fromWrapper.resolve(`@foundry-rs/anvil-${platform}/bin/anvil`);
}

/**
 * Waits for this very process to print "Listening on host:port" (polling the URL could reach another node
 * already on that port) and returns the port.
 */
async function listeningPort(proc: ManagedProcess): Promise<number> {
  // 'close' rather than 'exit': by then its last words (e.g. "Address already in use") have been read.
  let closed: number | null | undefined;
  proc.child.once('close', (code) => {
    closed = code;
  });
  const port = await waitFor(
    () => (closed !== undefined ? -1 : Number(/^Listening on .*:(\d+)\s*$/m.exec(proc.output())?.[1] ?? 0)),
    { timeoutMs: 10_000, intervalMs: 10, what: 'anvil to listen' },
  );
  if (port === -1) throw new Error(`anvil exited (code ${closed}) before listening:\n${proc.output().trim()}`);
  return port;
}

/** Idempotent: on a restart from saved state the code is already there and the token already initialized. */
async function placeContracts(rpcUrl: string, intervalMining: boolean): Promise<void> {
  const client = createTestClient({ mode: 'anvil', transport: http(rpcUrl, { retryCount: 0 }), pollingInterval: 50 })
    .extend(publicActions)
    .extend(walletActions);

  const placed = async (address: Address, code: Hex) => (await client.getCode({ address }))?.toLowerCase() === code;
  if (!(await placed(MULTICALL3_ADDRESS, multicall3Bytecode.deployedBytecode))) {
    await client.setCode({ address: MULTICALL3_ADDRESS, bytecode: multicall3Bytecode.deployedBytecode });
  }
  if (!(await placed(BASE_USDC_ADDRESS, testUsdcBytecode.deployedBytecode))) {
    // Also replaces an older build of the token in a saved state; storage (balances) is kept.
    await client.setCode({ address: BASE_USDC_ADDRESS, bytecode: testUsdcBytecode.deployedBytecode });
  }
  const owner = await client.readContract({ address: BASE_USDC_ADDRESS, abi: testUsdcAbi, functionName: 'owner' });
  if (owner !== zeroAddress) return;

  // Sent from an account anvil holds the key of (eth_sendTransaction): anvil assigns the nonce.
  const hash = await client.writeContract({
    account: DEVNET_ACCOUNTS.deployer.address,
    chain: null,
    address: BASE_USDC_ADDRESS,
    abi: testUsdcAbi,
    functionName: 'initialize',
    args: ['USD Coin', 'USDC', '2', DEVNET_ACCOUNTS.faucet.address],
  });
  if (intervalMining) await client.mine({ blocks: 1 });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success') throw new Error(`devnet: initializing the test USDC failed (tx ${hash})`);
}

function forwardLines(proc: ManagedProcess, log: (line: string) => void): void {
  for (const stream of [proc.child.stdout, proc.child.stderr]) {
    let rest = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) log(line);
    });
  }
}

/** anvil listening on every interface is still reached through loopback. */
function connectableHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
