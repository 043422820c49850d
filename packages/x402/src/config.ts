import { addressSchema, CHAIN_NAMES, type ChainInfo, resolveChain } from '@agentstack/chain';
import type { Logger } from '@agentstack/core';
import { HTTPFacilitatorClient } from '@x402/core/server';
import { z } from 'zod';
import { PaymentGate } from './gate.js';
import type { X402Store } from './store.js';

/**
 * The environment every x402-paid service reads, spread into the service's own config schema:
 * `z.object({ ...paymentEnv, WALLET_PORT: env.port(4101), ... })`.
 */
export const paymentEnv = {
  /** Which chain payments settle on: the local anvil devnet (default), Base, or Base Sepolia. */
  CHAIN: z.enum(CHAIN_NAMES).default('devnet'),
  /** JSON-RPC endpoint; required for the devnet, optional (public endpoint) for Base. */
  BASE_RPC_URL: z.url().optional(),
  /** The x402 facilitator that verifies and settles payments. */
  FACILITATOR_URL: z.url(),
};

export interface PaymentConfig {
  CHAIN: (typeof CHAIN_NAMES)[number];
  BASE_RPC_URL?: string | undefined;
  FACILITATOR_URL: string;
}

export function chainFromConfig(config: PaymentConfig): ChainInfo {
  if (config.CHAIN === 'devnet' && !config.BASE_RPC_URL) {
    throw new Error('BASE_RPC_URL: required when CHAIN=devnet (the devnet RPC printed by `start`)');
  }
  return resolveChain({ name: config.CHAIN, rpcUrl: config.BASE_RPC_URL });
}

/** A service's payment gate: its own pay-to address, the configured chain's USDC and facilitator. */
export function paymentGateFromConfig(options: {
  config: PaymentConfig;
  payTo: string;
  serviceName: string;
  store: X402Store;
  log?: Logger;
}): { gate: PaymentGate; chain: ChainInfo } {
  const chain = chainFromConfig(options.config);
  const gate = new PaymentGate({
    facilitator: new HTTPFacilitatorClient({ url: options.config.FACILITATOR_URL }),
    network: chain.network,
    payTo: addressSchema.parse(options.payTo),
    asset: chain.usdc,
    store: options.store,
    serviceName: options.serviceName,
    ...(options.log ? { log: options.log } : {}),
  });
  return { gate, chain };
}
