import { x402Facilitator } from '@x402/core/facilitator';
import type { FacilitatorClient } from '@x402/core/server';
import type {
  Network,
  PaymentPayload,
  PaymentRequirements,
  SettleResponse,
  SupportedResponse,
  VerifyResponse,
} from '@x402/core/types';
import { toFacilitatorEvmSigner } from '@x402/evm';
import { registerExactEvmScheme } from '@x402/evm/exact/facilitator';
import { type Chain, createWalletClient, type Hex, http, nonceManager, publicActions } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

export interface LocalFacilitatorOptions {
  rpcUrl: string;
  chain: Chain;
  /** CAIP-2 id of the one network this facilitator settles on, e.g. `eip155:8453`. */
  network: Network;
  /** Key of the account that submits settlements and pays their gas. */
  gasPrivateKey: Hex;
  /** How long a settlement waits for its receipt before reporting pending. */
  confirmationTimeoutMs?: number;
  /** How often to poll for a settlement's receipt (default 1 s; Base makes a block every 2 s, the devnet at once). */
  pollingIntervalMs?: number;
}

export interface LocalFacilitator {
  facilitator: x402Facilitator;
  /** A `FacilitatorClient` that calls the facilitator in-process (no HTTP hop). */
  client: FacilitatorClient;
  network: Network;
  gasAddress: Hex;
}

/**
 * The official x402 facilitator (`x402Facilitator` + the exact EVM scheme), settling on one chain with a
 * gas account of ours. Used in-process by services and tests, or behind `facilitatorApp` over HTTP.
 */
export function createLocalFacilitator(options: LocalFacilitatorOptions): LocalFacilitator {
  // Settlements run concurrently from one gas account: the nonce manager hands out nonces in order.
  const account = privateKeyToAccount(options.gasPrivateKey, { nonceManager });
  const wallet = createWalletClient({
    account,
    chain: options.chain,
    transport: http(options.rpcUrl),
    pollingInterval: options.pollingIntervalMs ?? 1_000,
  }).extend(publicActions);
  const signer = toFacilitatorEvmSigner(
    {
      address: account.address,
      // biome-ignore lint/suspicious/noExplicitAny: viem's generic client is wider than the signer's structural type.
      readContract: (args) => wallet.readContract(args as any),
      // biome-ignore lint/suspicious/noExplicitAny: see above
      verifyTypedData: (args) => wallet.verifyTypedData(args as any),
      // biome-ignore lint/suspicious/noExplicitAny: see above
      writeContract: (args) => wallet.writeContract(args as any),
      sendTransaction: (args) => wallet.sendTransaction(args),
      waitForTransactionReceipt: (args) => wallet.waitForTransactionReceipt(args),
      getCode: (args) => wallet.getCode(args),
    },
    { confirmationTimeoutMs: options.confirmationTimeoutMs ?? 60_000 },
  );
  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, { signer, networks: options.network });
  return { facilitator, client: inProcessClient(facilitator), network: options.network, gasAddress: account.address };
}

function inProcessClient(facilitator: x402Facilitator): FacilitatorClient {
  return {
    verify: (payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> =>
      facilitator.verify(payload, requirements),
    settle: (payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> =>
      facilitator.settle(payload, requirements),
    getSupported: async (): Promise<SupportedResponse> => facilitator.getSupported() as SupportedResponse,
  };
}
