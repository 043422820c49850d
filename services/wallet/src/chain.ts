import { type ChainInfo, testUsdcAbi, uniswapV2RouterAbi } from '@agentstack/chain';
import type { Logger } from '@agentstack/core';
import {
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  createPublicClient,
  encodeFunctionData,
  type Hash,
  type Hex,
  http,
  keccak256,
  type LocalAccount,
  nonceManager,
  type PublicClient,
  parseSignature,
  type TransactionReceipt,
  type Transport,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { StoredAuthorization } from './db.js';

export interface SignedTx {
  raw: Hex;
  hash: Hash;
  nonce: number;
}

export interface TxRequest {
  to: Address;
  data?: Hex;
  value?: bigint;
}

/** A transaction the chain refused or reverted; `reason` is safe to show (no keys, no raw data). */
export class ChainError extends Error {
  constructor(
    message: string,
    readonly reason: string,
    readonly kind: 'reverted' | 'rejected' | 'unavailable',
  ) {
    super(message);
    this.name = 'ChainError';
  }
}

/** Short, caller-safe reason of a viem error (the revert reason when there is one). */
export function chainReason(err: unknown): string {
  if (err instanceof BaseError) {
    const revert = err.walk((e) => e instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError | null;
    if (revert?.reason) return revert.reason;
    const details = (err as BaseError & { details?: string }).details;
    return (details || err.shortMessage || 'transaction failed').slice(0, 300);
  }
  return ((err as Error)?.message ?? String(err)).slice(0, 300);
}

const unavailable = (err: unknown) =>
  err instanceof BaseError && /fetch failed|ECONNREFUSED|timed out|HTTP request failed|socket/i.test(err.message);

const authorizationUsedEvent = {
  type: 'event',
  name: 'AuthorizationUsed',
  inputs: [
    { indexed: true, name: 'authorizer', type: 'address' },
    { indexed: true, name: 'nonce', type: 'bytes32' },
  ],
} as const;

const transferEvent = {
  type: 'event',
  name: 'Transfer',
  inputs: [
    { indexed: true, name: 'from', type: 'address' },
    { indexed: true, name: 'to', type: 'address' },
    { indexed: false, name: 'value', type: 'uint256' },
  ],
} as const;

export interface UniswapAddresses {
  router: Address;
  weth: Address;
}

/**
 * Everything wallet.sh asks of the chain: balances, EIP-3009 state, relaying by the service's gas account
 * (one nonce manager for all its transactions), pre-signed transactions that can be re-broadcast after a
 * crash, receipts, Uniswap quotes, and Transfer logs.
 */
export class ChainGateway {
  readonly client: PublicClient<Transport, Chain>;
  readonly relayer: LocalAccount;
  readonly usdc: Address;
  private uniswapCache: Promise<UniswapAddresses> | undefined;
  /** The gas account has approved the router for USDC (checked once per process). */
  routerApproved = false;

  constructor(
    readonly chain: ChainInfo,
    relayerKey: Hex,
    private readonly options: { pollingIntervalMs: number; uniswapRouter?: Address; log?: Logger },
  ) {
    this.client = createPublicClient({
      chain: chain.viemChain,
      transport: http(chain.rpcUrl, { retryCount: 2 }),
      pollingInterval: options.pollingIntervalMs,
    }) as PublicClient<Transport, Chain>;
    this.relayer = privateKeyToAccount(relayerKey, { nonceManager });
    this.usdc = chain.usdc.address;
  }

  usdcBalance(address: Address): Promise<bigint> {
    return this.client.readContract({
      address: this.usdc,
      abi: testUsdcAbi,
      functionName: 'balanceOf',
      args: [address],
    });
  }

  ethBalance(address: Address): Promise<bigint> {
    return this.client.getBalance({ address });
  }

  blockNumber(): Promise<bigint> {
    return this.client.getBlockNumber({ cacheTime: 0 });
  }

  /** True once an EIP-3009 authorization has been used (or cancelled) on-chain: it can never move money again. */
  authorizationUsed(from: Address, nonce: Hex): Promise<boolean> {
    return this.client.readContract({
      address: this.usdc,
      abi: testUsdcAbi,
      functionName: 'authorizationState',
      args: [from, nonce],
    });
  }

  /** The transaction that used an authorization (found from its `AuthorizationUsed` log). */
  async findAuthorizationUse(from: Address, nonce: Hex, fromBlock: bigint): Promise<Hash | undefined> {
    const logs = await this.client.getLogs({
      address: this.usdc,
      event: authorizationUsedEvent,
      args: { authorizer: from, nonce },
      fromBlock,
      toBlock: 'latest',
    });
    return logs[0]?.transactionHash ?? undefined;
  }

  /** Calldata of USDC's `transferWithAuthorization` (v, r, s form: every USDC version and EOA signer takes it). */
  transferWithAuthorizationData(auth: StoredAuthorization): Hex {
    const { v, r, s, yParity } = parseSignature(auth.signature as Hex);
    return encodeFunctionData({
      abi: testUsdcAbi,
      functionName: 'transferWithAuthorization',
      args: [
        auth.from as Address,
        auth.to as Address,
        BigInt(auth.value),
        BigInt(auth.validAfter),
        BigInt(auth.validBefore),
        auth.nonce as Hex,
        v === undefined ? yParity + 27 : Number(v),
        r,
        s,
      ],
    });
  }

  /**
   * Signs a transaction of `account` without sending it, so it can be recorded first and re-broadcast after a
   * crash. Simulates and estimates first (a revert throws and consumes no nonce).
   */
  async signTx(account: LocalAccount, request: TxRequest, nonce?: number): Promise<SignedTx> {
    // Estimating gas executes the call: a revert shows up here, before any nonce is taken.
    let gas: bigint;
    try {
      gas = await this.client.estimateGas({ account: account.address, ...request });
    } catch (err) {
      if (unavailable(err)) throw new ChainError('chain unavailable', chainReason(err), 'unavailable');
      throw new ChainError(`would revert: ${chainReason(err)}`, chainReason(err), 'reverted');
    }
    const fees = await this.fees();
    const chosen =
      nonce ??
      (account.nonceManager
        ? await account.nonceManager.consume({ address: account.address, chainId: this.chain.id, client: this.client })
        : await this.client.getTransactionCount({ address: account.address, blockTag: 'pending' }));
    const raw = await account.signTransaction!({
      chainId: this.chain.id,
      type: 'eip1559',
      to: request.to,
      data: request.data,
      value: request.value ?? 0n,
      gas: (gas * 12n) / 10n + 10_000n,
      nonce: chosen,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    });
    return { raw, hash: keccak256(raw), nonce: chosen };
  }

  private feeCache: { at: number; value: Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> } | undefined;

  /** EIP-1559 fees, shared for a second (one block on Base) by every transaction being signed. */
  fees(): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    const now = Date.now();
    if (!this.feeCache || now - this.feeCache.at > 1_000) {
      const value = this.client.estimateFeesPerGas().catch((err) => {
        this.feeCache = undefined;
        throw err;
      });
      this.feeCache = { at: now, value };
    }
    return this.feeCache.value;
  }

  /** A recent block number (cached for a second): a lower bound for log searches. */
  recentBlock(): Promise<bigint> {
    return this.client.getBlockNumber({ cacheTime: 1_000 });
  }

  /** Upper bound of what a transaction may cost in gas (for "needs ETH for gas" checks). */
  async maxGasCost(from: Address, request: TxRequest): Promise<bigint> {
    const [gas, fees] = await Promise.all([
      this.client.estimateGas({ account: from, ...request }).catch(() => 100_000n),
      this.fees(),
    ]);
    return ((gas * 12n) / 10n + 10_000n) * fees.maxFeePerGas;
  }

  /**
   * Sends a signed transaction. Sending the same bytes again is harmless (the node knows it, or it is mined):
   * that is what makes re-broadcasting after a crash safe.
   */
  async broadcast(raw: Hex): Promise<Hash> {
    const hash = keccak256(raw);
    try {
      return await this.client.sendRawTransaction({ serializedTransaction: raw });
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      if (/already known|already imported|known transaction/i.test(text)) return hash;
      if (/nonce too low|nonce has already been used/i.test(text)) {
        if (await this.receipt(hash)) return hash;
        this.relayer.nonceManager?.reset({ address: this.relayer.address, chainId: this.chain.id });
        throw new ChainError('transaction nonce already used by another transaction', 'nonce_used', 'rejected');
      }
      this.relayer.nonceManager?.reset({ address: this.relayer.address, chainId: this.chain.id });
      if (unavailable(err)) throw new ChainError('chain unavailable', chainReason(err), 'unavailable');
      throw new ChainError(`rejected: ${chainReason(err)}`, chainReason(err), 'rejected');
    }
  }

  /**
   * Relays calldata from the gas account (sign + broadcast), retrying a nonce race. A gas account out of ETH
   * is the service's problem, not the wallet's: it is reported as unavailable (the journal keeps the entry
   * for the reconciler) and never counts toward a wallet's breaker.
   */
  async relay(request: TxRequest): Promise<SignedTx> {
    for (let attempt = 1; ; attempt++) {
      try {
        const signed = await this.signTx(this.relayer, request);
        await this.broadcast(signed.raw);
        return signed;
      } catch (err) {
        if (err instanceof ChainError && err.reason === 'nonce_used' && attempt < 3) continue;
        if (err instanceof ChainError && /insufficient funds|gas required exceeds allowance/i.test(err.reason)) {
          this.options.log?.error(
            { relayer: this.relayer.address },
            'the gas account cannot pay for gas: fund it with ETH',
          );
          throw new ChainError('the service gas account is out of ETH', 'gas_account_empty', 'unavailable');
        }
        throw err;
      }
    }
  }

  async receipt(hash: Hash): Promise<TransactionReceipt | undefined> {
    try {
      return await this.client.getTransactionReceipt({ hash });
    } catch (err) {
      if ((err as Error).name === 'TransactionReceiptNotFoundError') return undefined;
      throw err;
    }
  }

  /** The receipt, or undefined when it did not arrive within `timeoutMs` (the transaction may still land). */
  async waitForReceipt(hash: Hash, timeoutMs: number): Promise<TransactionReceipt | undefined> {
    try {
      return await this.client.waitForTransactionReceipt({ hash, timeout: timeoutMs });
    } catch (err) {
      if ((err as Error).name === 'WaitForTransactionReceiptTimeoutError') return undefined;
      throw err;
    }
  }

  /** The next nonce `address` may use (counting its transactions in the mempool). */
  pendingNonce(address: Address): Promise<number> {
    return this.client.getTransactionCount({ address, blockTag: 'pending' });
  }

  minedNonce(address: Address): Promise<number> {
    return this.client.getTransactionCount({ address, blockTag: 'latest' });
  }

  /** Router, and WETH read from it. Throws when no router is configured. */
  uniswap(): Promise<UniswapAddresses> {
    const router = this.options.uniswapRouter;
    if (!router) return Promise.reject(new ChainError('no swap router configured', 'no_router', 'unavailable'));
    this.uniswapCache ??= this.client
      .readContract({ address: router, abi: uniswapV2RouterAbi, functionName: 'WETH' })
      .then((weth) => ({ router, weth }))
      .catch((err) => {
        this.uniswapCache = undefined;
        throw new ChainError(`swap router ${router} unusable: ${chainReason(err)}`, 'no_router', 'unavailable');
      });
    return this.uniswapCache;
  }

  /** What `amountIn` buys along `path` right now (Uniswap V2 `getAmountsOut`, fees and price impact included). */
  async quote(amountIn: bigint, path: Address[]): Promise<bigint> {
    const { router } = await this.uniswap();
    const amounts = await this.client.readContract({
      address: router,
      abi: uniswapV2RouterAbi,
      functionName: 'getAmountsOut',
      args: [amountIn, path],
    });
    return amounts[amounts.length - 1]!;
  }

  /** ETH (wei) valued in atomic USDC at the pool's current price; undefined when there is no router. */
  async ethToUsdc(wei: bigint): Promise<bigint | undefined> {
    if (wei === 0n) return 0n;
    try {
      const { weth } = await this.uniswap();
      return await this.quote(wei, [weth, this.usdc]);
    } catch {
      return undefined;
    }
  }

  /** Incoming USDC transfers to any of `wallets` in a block range. */
  async incomingTransfers(wallets: Address[], fromBlock: bigint, toBlock: bigint) {
    if (wallets.length === 0) return [];
    return this.client.getLogs({
      address: this.usdc,
      event: transferEvent,
      args: { to: wallets },
      fromBlock,
      toBlock,
    });
  }
}
