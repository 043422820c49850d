import { type Address, createTestClient, type Hash, http, publicActions, walletActions } from 'viem';
import { testUsdcAbi } from './artifacts.js';
import { BASE_USDC_ADDRESS, isDevnetRpc } from './chains.js';

/** Thrown when asked to mint or set balances on something that is not an anvil devnet. */
export class NotDevnetError extends Error {
  readonly code = 'not_devnet';
  constructor(rpcUrl: string) {
    super(`refusing to fund: ${rpcUrl} is not an anvil devnet (web3_clientVersion does not say anvil)`);
    this.name = 'NotDevnetError';
  }
}

interface FundArgs {
  rpcUrl: string;
  to: Address;
  /** Atomic units (USDC: 6 decimals; ETH: wei). */
  amount: bigint;
}

/** Mints test USDC to `to`, as the token's owner (an account anvil holds the key of). Resolves once mined. */
export async function fundUsdc({
  rpcUrl,
  to,
  amount,
  token = BASE_USDC_ADDRESS,
}: FundArgs & { token?: Address }): Promise<{ hash: Hash }> {
  const client = await devnetClient(rpcUrl, amount);
  const owner = await client.readContract({ address: token, abi: testUsdcAbi, functionName: 'owner' });
  // eth_sendTransaction from an unlocked account: anvil assigns the nonce. Under concurrent calls it can still
  // hand out one twice ("nonce too low"), so such a race is simply retried.
  const hash = await retryNonceRace(() =>
    client.writeContract({
      account: owner,
      chain: null,
      address: token,
      abi: testUsdcAbi,
      functionName: 'mint',
      args: [to, amount],
    }),
  );
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success') throw new Error(`fundUsdc: mint reverted (tx ${hash})`);
  return { hash };
}

/**
 * Adds `amount` wei to `to` with `anvil_setBalance`: no transaction, so it also works for contracts that
 * cannot receive ETH, and it drains no account.
 */
export async function fundEth({ rpcUrl, to, amount }: FundArgs): Promise<{ balance: bigint }> {
  const client = await devnetClient(rpcUrl, amount);
  const balance = (await client.getBalance({ address: to })) + amount;
  await client.setBalance({ address: to, value: balance });
  return { balance };
}

async function devnetClient(rpcUrl: string, amount: bigint) {
  if (typeof amount !== 'bigint' || amount <= 0n) throw new RangeError('amount must be a positive bigint');
  if (!(await isDevnetRpc(rpcUrl))) throw new NotDevnetError(rpcUrl);
  return createTestClient({ mode: 'anvil', transport: http(rpcUrl, { retryCount: 0 }), pollingInterval: 50 })
    .extend(publicActions)
    .extend(walletActions);
}

async function retryNonceRace<T>(send: () => Promise<T>, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const nonceRace = /nonce too low|replacement transaction underpriced/i.test(String((err as Error).message));
      if (!nonceRace || attempt >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 20 * attempt));
    }
  }
}
