import { type Devnet, fundUsdc, startDevnet, usdcBalance } from '@agentstack/chain';
import { listenOn } from '@agentstack/core';
import { HTTPFacilitatorClient } from '@x402/core/server';
import { toClientEvmSigner } from '@x402/evm';
import { createPublicClient, type Hex, http } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { createPayingFetch, type PayingFetch, type SpendLimits } from './client.js';
import { createLocalFacilitator } from './facilitator.js';
import { facilitatorApp } from './facilitator-app.js';

/**
 * Real peers for payment tests: an anvil devnet with the test USDC, the official facilitator served over HTTP,
 * funded payer accounts and the official `@x402/fetch` client. Every service's tests start one of these.
 */
export interface PaymentTestbed {
  devnet: Devnet;
  facilitatorUrl: string;
  facilitator: HTTPFacilitatorClient;
  /** A fresh account holding `usdc` atomic units. */
  fundedAccount(usdc?: bigint): Promise<PrivateKeyAccount>;
  /** The official client paying as `account`, with our spend limits (default: $10 per payment). */
  payingFetch(account: PrivateKeyAccount, limits?: Partial<SpendLimits>): PayingFetch;
  balance(address: `0x${string}`): Promise<bigint>;
  stop(): Promise<void>;
}

export async function startPaymentTestbed(): Promise<PaymentTestbed> {
  const devnet = await startDevnet();
  const local = createLocalFacilitator({
    rpcUrl: devnet.rpcUrl,
    chain: devnet.chain.viemChain,
    network: devnet.chain.network,
    gasPrivateKey: devnet.accounts.gas.privateKey,
    confirmationTimeoutMs: 10_000,
    pollingIntervalMs: 50,
  });
  const server = await listen(facilitatorApp(local.facilitator));
  const publicClient = createPublicClient({ chain: devnet.chain.viemChain, transport: http(devnet.rpcUrl) });
  return {
    devnet,
    facilitatorUrl: server.url,
    facilitator: new HTTPFacilitatorClient({ url: server.url }),
    async fundedAccount(usdc = 100_000_000n) {
      const account = privateKeyToAccount(generatePrivateKey() as Hex);
      await fundUsdc({ rpcUrl: devnet.rpcUrl, to: account.address, amount: usdc });
      return account;
    },
    payingFetch(account, limits = {}) {
      return createPayingFetch(toClientEvmSigner(account, publicClient), { maxPerPayment: 10_000_000n, ...limits });
    },
    balance: (address) => usdcBalance(publicClient, address, devnet.usdc),
    async stop() {
      await server.close();
      await devnet.stop();
    },
  };
}

/** Serves an app on a free loopback port (re-exported for tests that import from here). */
export const listen = (app: { fetch: (request: Request) => Response | Promise<Response> }) =>
  listenOn(app, { port: 0 });
