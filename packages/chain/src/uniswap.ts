import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  type Address,
  createPublicClient,
  createWalletClient,
  getContractAddress,
  type Hex,
  http,
  maxUint256,
  parseAbi,
  zeroAddress,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { testUsdcAbi } from './artifacts.js';
import { BASE_USDC_ADDRESS, resolveChain } from './chains.js';
import { DEVNET_ACCOUNTS } from './devnet-accounts.js';
import { fundUsdc } from './faucet.js';

/** The parts of Uniswap V2's Router02 a wallet needs (quotes, swaps both ways, liquidity). */
export const uniswapV2RouterAbi = parseAbi([
  'function factory() view returns (address)',
  'function WETH() view returns (address)',
  'function getAmountsOut(uint256 amountIn, address[] path) view returns (uint256[] amounts)',
  'function swapExactTokensForETH(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline) returns (uint256[] amounts)',
  'function swapExactETHForTokens(uint256 amountOutMin, address[] path, address to, uint256 deadline) payable returns (uint256[] amounts)',
  'function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline) returns (uint256[] amounts)',
  'function addLiquidityETH(address token, uint256 amountTokenDesired, uint256 amountTokenMin, uint256 amountETHMin, address to, uint256 deadline) payable returns (uint256 amountToken, uint256 amountETH, uint256 liquidity)',
]);

export const uniswapV2FactoryAbi = parseAbi([
  'function getPair(address tokenA, address tokenB) view returns (address pair)',
  'function allPairsLength() view returns (uint256)',
]);

export const uniswapV2PairAbi = parseAbi([
  'function getReserves() view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast)',
  'function token0() view returns (address)',
  'event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out, uint256 amount1Out, address indexed to)',
]);

/** Uniswap V2's Router02 on Base mainnet (docs.uniswap.org, "V2 Deployment Addresses"); WETH is read from it. */
export const BASE_UNISWAP_V2_ROUTER: Address = '0x4752ba5DBc23f44D87826276BF6Fd6b1C372aD24';

export interface UniswapV2Deployment {
  factory: Address;
  router: Address;
  weth: Address;
  /** The USDC/WETH pair (zero address until a pool is seeded). */
  pair: Address;
}

export interface UniswapPoolSeed {
  /** Atomic USDC put into the pool (default 2,500,000 USDC). */
  usdc: bigint;
  /** Wei put into the pool (default 1,000 ETH: 2,500 USDC per ETH). */
  eth: bigint;
}

export const DEFAULT_UNISWAP_SEED: UniswapPoolSeed = { usdc: 2_500_000_000_000n, eth: 1_000n * 10n ** 18n };

/**
 * Where the devnet's Uniswap V2 lives. The contracts are deployed by a dedicated well-known account with
 * nonces 0, 1 and 2, so their addresses are the same on every devnet and need no configuration.
 */
export const DEVNET_UNISWAP: Omit<UniswapV2Deployment, 'pair'> = {
  weth: getContractAddress({ from: DEVNET_ACCOUNTS.uniswap.address, nonce: 0n }),
  factory: getContractAddress({ from: DEVNET_ACCOUNTS.uniswap.address, nonce: 1n }),
  router: getContractAddress({ from: DEVNET_ACCOUNTS.uniswap.address, nonce: 2n }),
};

const require = createRequire(import.meta.url);

/** Creation code from the published npm build artefacts (the audited builds, not a recompile). */
function creationCode(module: string): Hex {
  const artifact = JSON.parse(readFileSync(require.resolve(module), 'utf8')) as { bytecode: string };
  return (artifact.bytecode.startsWith('0x') ? artifact.bytecode : `0x${artifact.bytecode}`) as Hex;
}

/**
 * Deploys the real Uniswap V2 (WETH9, UniswapV2Factory from `@uniswap/v2-core@1.0.1`, UniswapV2Router02 from
 * `@uniswap/v2-periphery@1.1.0-beta.0`) onto an anvil devnet and seeds a USDC/WETH pool. Idempotent: on a
 * devnet restored from saved state it finds everything in place and only tops up an empty pool.
 */
export async function deployUniswapV2({
  rpcUrl,
  seed = DEFAULT_UNISWAP_SEED,
  usdc = BASE_USDC_ADDRESS,
}: {
  rpcUrl: string;
  seed?: UniswapPoolSeed | false;
  usdc?: Address;
}): Promise<UniswapV2Deployment> {
  const chain = resolveChain({ name: 'devnet', rpcUrl }).viemChain;
  const account = privateKeyToAccount(DEVNET_ACCOUNTS.uniswap.privateKey);
  const transport = http(rpcUrl, { retryCount: 0 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
  const wallet = createWalletClient({ account, chain, transport });

  const mined = async (hash: Hex, what: string) => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new Error(`uniswap: ${what} reverted (tx ${hash})`);
    return receipt;
  };

  const hasCode = async (address: Address) => ((await publicClient.getCode({ address })) ?? '0x') !== '0x';
  if (!(await hasCode(DEVNET_UNISWAP.router))) {
    const nonce = await publicClient.getTransactionCount({ address: account.address });
    if (nonce !== 0) {
      throw new Error(
        `uniswap: the deployer ${account.address} has already sent ${nonce} transactions on this devnet but the ` +
          'router is missing; start from a fresh devnet state',
      );
    }
    const steps: [string, Hex][] = [
      ['WETH9', creationCode('@uniswap/v2-periphery/build/WETH9.json')],
      [
        'UniswapV2Factory',
        (creationCode('@uniswap/v2-core/build/UniswapV2Factory.json') +
          // constructor(address _feeToSetter)
          account.address.slice(2).toLowerCase().padStart(64, '0')) as Hex,
      ],
      [
        'UniswapV2Router02',
        (creationCode('@uniswap/v2-periphery/build/UniswapV2Router02.json') +
          // constructor(address _factory, address _WETH)
          DEVNET_UNISWAP.factory.slice(2).toLowerCase().padStart(64, '0') +
          DEVNET_UNISWAP.weth.slice(2).toLowerCase().padStart(64, '0')) as Hex,
      ],
    ];
    for (const [index, [name, data]] of steps.entries()) {
      const hash = await wallet.sendTransaction({ data, nonce: index, gas: 6_000_000n });
      await mined(hash, `deploying ${name}`);
    }
  }

  const deployment: UniswapV2Deployment = { ...DEVNET_UNISWAP, pair: zeroAddress };
  deployment.pair = await publicClient.readContract({
    address: DEVNET_UNISWAP.factory,
    abi: uniswapV2FactoryAbi,
    functionName: 'getPair',
    args: [usdc, DEVNET_UNISWAP.weth],
  });
  if (seed === false) return deployment;
  if (deployment.pair !== zeroAddress) {
    const [reserve0, reserve1] = await publicClient.readContract({
      address: deployment.pair,
      abi: uniswapV2PairAbi,
      functionName: 'getReserves',
    });
    if (reserve0 > 0n && reserve1 > 0n) return deployment;
  }

  // Seed the pool: mint the USDC side, approve the router, add liquidity with the ETH side.
  await fundUsdc({ rpcUrl, to: account.address, amount: seed.usdc, token: usdc });
  const ethBalance = await publicClient.getBalance({ address: account.address });
  if (ethBalance < seed.eth + 10n ** 18n) {
    throw new Error(`uniswap: the deployer holds ${ethBalance} wei, not enough to seed ${seed.eth} wei`);
  }
  await mined(
    await wallet.writeContract({
      address: usdc,
      abi: testUsdcAbi,
      functionName: 'approve',
      args: [DEVNET_UNISWAP.router, maxUint256],
    }),
    'approving the router',
  );
  const block = await publicClient.getBlock();
  await mined(
    await wallet.writeContract({
      address: DEVNET_UNISWAP.router,
      abi: uniswapV2RouterAbi,
      functionName: 'addLiquidityETH',
      args: [usdc, seed.usdc, seed.usdc, seed.eth, account.address, block.timestamp + 600n],
      value: seed.eth,
      gas: 5_000_000n,
    }),
    'adding USDC/WETH liquidity',
  );
  deployment.pair = await publicClient.readContract({
    address: DEVNET_UNISWAP.factory,
    abi: uniswapV2FactoryAbi,
    functionName: 'getPair',
    args: [usdc, DEVNET_UNISWAP.weth],
  });
  return deployment;
}
