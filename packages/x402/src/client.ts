import { x402Client } from '@x402/core/client';
import type { PaymentRequirements } from '@x402/core/types';
import type { ClientEvmSigner } from '@x402/evm';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPayment } from '@x402/fetch';

export interface SpendLimits {
  /** Largest single payment, atomic USDC. */
  maxPerPayment: bigint;
  /** Total this client may spend over its lifetime, atomic USDC (omit for no total). */
  budget?: bigint;
  /** Only pay these recipients (lower-case compare); omit for any. */
  allowPayTo?: string[];
}

export interface PayingFetch {
  fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** Atomic USDC committed to payments so far (signed; a payment the server never settles still counts). */
  spent(): bigint;
  client: x402Client;
}

/**
 * The official `@x402/fetch` client with our spend limits applied before anything is signed: a route that
 * asks for more than `maxPerPayment`, or would take the total past `budget`, is refused locally.
 */
export function createPayingFetch(
  signer: ClientEvmSigner,
  limits: SpendLimits,
  baseFetch: typeof globalThis.fetch = globalThis.fetch,
): PayingFetch {
  let spent = 0n;
  const allowed = limits.allowPayTo?.map((a) => a.toLowerCase());
  const client = new x402Client();
  registerExactEvmScheme(client, { signer });
  // Our limits replace the library's default $1 cap, so larger (configured) payments are possible.
  client.setSpendControls({ maxAmountPerPayment: false, allowedAssets: true });
  client.registerPolicy((_version, requirements: PaymentRequirements[]) =>
    requirements.filter((r) => {
      const amount = BigInt(r.amount);
      if (amount > limits.maxPerPayment) return false;
      if (limits.budget !== undefined && spent + amount > limits.budget) return false;
      if (allowed && !allowed.includes(r.payTo.toLowerCase())) return false;
      return true;
    }),
  );
  client.onAfterPaymentCreation(async ({ selectedRequirements }) => {
    spent += BigInt(selectedRequirements.amount);
  });
  return { fetch: wrapFetchWithPayment(baseFetch, client), spent: () => spent, client };
}
