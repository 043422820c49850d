import { randomBytes } from 'node:crypto';
import {
  type Address,
  type Client,
  type Hex,
  type LocalAccount,
  parseSignature,
  type TypedDataDomain,
  toHex,
} from 'viem';
import { readContract } from 'viem/actions';
import { testUsdcAbi } from './artifacts.js';
import type { UsdcInfo } from './chains.js';

/** EIP-3009's signed message, as the token (and x402's `exact` scheme) hashes it. */
export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const;

type TokenDomain = Pick<UsdcInfo, 'address' | 'name' | 'version'>;

/** The token's EIP-712 domain on a chain. */
export function usdcDomain(chain: { id: number }, token: TokenDomain) {
  return {
    name: token.name,
    version: token.version,
    chainId: chain.id,
    verifyingContract: token.address,
  } as const satisfies TypedDataDomain;
}

/** USDC balance in atomic units (6 decimals). */
export function usdcBalance(client: Client, address: Address, token: Address): Promise<bigint> {
  return readContract(client, { address: token, abi: testUsdcAbi, functionName: 'balanceOf', args: [address] });
}

/** A random 32-byte EIP-3009 nonce (authorizations are not sequential, so it only has to be unique). */
export function randomNonce(): Hex {
  return toHex(randomBytes(32));
}

export interface TransferAuthorization {
  /** Default: the signing account. Differs for a contract wallet (EIP-1271) whose owner signs for it. */
  from?: Address;
  to: Address;
  value: bigint;
  /** Unix seconds; the authorization is valid strictly after `validAfter` and strictly before `validBefore`. */
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
}

export interface SignedAuthorization {
  v: number;
  r: Hex;
  s: Hex;
  /** The 65-byte r‖s‖v form, for the `bytes signature` overloads. */
  signature: Hex;
}

/** Signs an EIP-3009 `TransferWithAuthorization` for `token` on `chain`, in both forms the token accepts. */
export async function signTransferAuthorization({
  account,
  chain,
  token,
  from = account.address,
  ...message
}: TransferAuthorization & {
  account: LocalAccount;
  chain: { id: number };
  token: TokenDomain;
}): Promise<SignedAuthorization> {
  const signature = await account.signTypedData({
    domain: usdcDomain(chain, token),
    types: transferWithAuthorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: { from, ...message },
  });
  const { r, s, v, yParity } = parseSignature(signature);
  return { v: v === undefined ? yParity + 27 : Number(v), r, s, signature };
}
