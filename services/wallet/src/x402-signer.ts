import { x402Client } from '@x402/core/client';
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { toClientEvmSigner } from '@x402/evm';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import type { LocalAccount } from 'viem';
import type { ChainGateway } from './chain.js';
import type { StoredAuthorization } from './db.js';

/**
 * Signs x402 payments for a managed wallet with the official client (`@x402/core` + the exact EVM scheme):
 * an EIP-3009 authorization of exactly the required amount to exactly the required payee. Spending limits
 * are the wallet policy's job, applied before this is called.
 */
export async function signX402Payment(
  account: LocalAccount,
  gateway: ChainGateway,
  paymentRequired: PaymentRequired,
): Promise<{ payload: PaymentPayload; auth: StoredAuthorization }> {
  const client = new x402Client();
  registerExactEvmScheme(client, {
    signer: toClientEvmSigner(account, gateway.client as never),
    networks: [gateway.chain.network],
  });
  client.setSpendControls({ maxAmountPerPayment: false, allowedAssets: true });
  const payload = await client.createPaymentPayload(paymentRequired);
  const inner = payload.payload as {
    authorization?: Omit<StoredAuthorization, 'signature'>;
    signature?: string;
  };
  if (!inner.authorization || !inner.signature) throw new Error('x402 payload is not an EIP-3009 authorization');
  return { payload, auth: { ...inner.authorization, signature: inner.signature } };
}

/** A PaymentRequired for one set of requirements (what the gate offers a route's own fee). */
export const requiredFor = (requirements: PaymentRequirements, url: string): PaymentRequired => ({
  x402Version: 2,
  resource: { url, description: 'wallet.sh route fee', mimeType: 'application/json' },
  accepts: [requirements],
});
