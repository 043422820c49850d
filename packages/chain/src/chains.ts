import { type Address, type Chain, createPublicClient, defineChain, HttpRequestError, http, RpcError } from 'viem';
import { base, baseSepolia } from 'viem/chains';

export type ChainName = 'base' | 'base-sepolia' | 'devnet';
export const CHAIN_NAMES = ['base', 'base-sepolia', 'devnet'] as const satisfies readonly ChainName[];

/** Base's canonical USDC. The devnet places its test token here too, so production configuration works unchanged. */
export const BASE_USDC_ADDRESS: Address = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
export const BASE_SEPOLIA_USDC_ADDRESS: Address = '0x036CbD53842c5426634e7929541eC2318f3dCF7e';
/** Multicall3's address on every public chain (and on the devnet, where we place it). */
export const MULTICALL3_ADDRESS: Address = '0xcA11bde05977b3631167028862bE2a173976CA11';

/** The token's ERC-20 facts and its EIP-712 domain (name, version): a wrong domain invalidates every signature. */
export interface UsdcInfo {
  address: Address;
  name: string;
  version: string;
  decimals: 6;
}

export interface ChainInfo {
  name: ChainName;
  id: number;
  /** CAIP-2, as x402 v2 names networks. */
  network: `eip155:${number}`;
  viemChain: Chain;
  rpcUrl: string;
  usdc: UsdcInfo;
  isDevnet: boolean;
}

const baseUsdc: UsdcInfo = { address: BASE_USDC_ADDRESS, name: 'USD Coin', version: '2', decimals: 6 };
const baseSepoliaUsdc: UsdcInfo = { address: BASE_SEPOLIA_USDC_ADDRESS, name: 'USDC', version: '2', decimals: 6 };

/**
 * Base, Base Sepolia, or the local devnet: an anvil with Base's chain id, USDC address and EIP-712 domain.
 * `rpcUrl` is required for the devnet and overrides the public endpoint otherwise.
 */
export function resolveChain({ name, rpcUrl }: { name: ChainName; rpcUrl?: string }): ChainInfo {
  switch (name) {
    case 'base':
      return info(name, withRpc(base, rpcUrl), baseUsdc, false);
    case 'base-sepolia':
      return info(name, withRpc(baseSepolia, rpcUrl), baseSepoliaUsdc, false);
    case 'devnet': {
      if (!rpcUrl) throw new Error('resolveChain: the devnet needs an rpcUrl');
      const viemChain = defineChain({
        id: base.id,
        name: 'Devnet (Base-shaped anvil)',
        nativeCurrency: base.nativeCurrency,
        rpcUrls: { default: { http: [rpcUrl] } },
        contracts: { multicall3: { address: MULTICALL3_ADDRESS } },
        testnet: true,
      });
      return info(name, viemChain, baseUsdc, true);
    }
    default:
      throw new Error(`resolveChain: unknown chain ${JSON.stringify(name)} (expected ${CHAIN_NAMES.join(', ')})`);
  }
}

function info(name: ChainName, viemChain: Chain, usdc: UsdcInfo, isDevnet: boolean): ChainInfo {
  return {
    name,
    id: viemChain.id,
    network: `eip155:${viemChain.id}`,
    viemChain,
    rpcUrl: viemChain.rpcUrls.default.http[0]!,
    usdc,
    isDevnet,
  };
}

function withRpc(chain: Chain, rpcUrl: string | undefined): Chain {
  return rpcUrl ? { ...chain, rpcUrls: { ...chain.rpcUrls, default: { http: [rpcUrl] } } } : chain;
}

/**
 * Asks the node who it is (`web3_clientVersion`), so a CLI can warn before treating a real chain as a devnet.
 * A node that answers but is not anvil gives false; an unreachable node throws.
 */
export async function isDevnetRpc(rpcUrl: string): Promise<boolean> {
  const client = createPublicClient({ transport: http(rpcUrl, { retryCount: 0, timeout: 5_000 }) });
  let version: unknown;
  try {
    version = await client.request({ method: 'web3_clientVersion' });
  } catch (err) {
    // The server answered (an RPC error, or an HTTP status such as 405 from a gateway): it is not anvil.
    if (err instanceof RpcError || (err instanceof HttpRequestError && err.status !== undefined)) return false;
    throw err;
  }
  return typeof version === 'string' && version.toLowerCase().includes('anvil');
}
