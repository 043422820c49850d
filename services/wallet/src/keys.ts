import { createHash, timingSafeEqual } from 'node:crypto';
import { randomToken, type SecretBox } from '@agentstack/core';
import type { Hex, LocalAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/**
 * Managed wallet keys: generated here, sealed at once (AES-256-GCM, key derived from the master secret for the
 * purpose `wallet-keys`, the wallet address as associated data so a sealed key cannot be moved to another
 * row), and opened only for the moment a signature is made. Neither the key nor the sealed form is ever part
 * of a response, a log line or an error.
 */
export class KeyVault {
  constructor(private readonly box: SecretBox) {}

  generate(): { address: `0x${string}`; sealedKey: string } {
    const privateKey = generatePrivateKey();
    const { address } = privateKeyToAccount(privateKey);
    return { address, sealedKey: this.box.seal(privateKey, address) };
  }

  /** A signing account for a stored wallet; refuses a sealed key that does not belong to `address`. */
  account(address: string, sealedKey: string): LocalAccount {
    const account = privateKeyToAccount(this.box.openText(sealedKey, address) as Hex);
    if (account.address !== address) throw new Error('sealed key does not match its wallet');
    return account;
  }
}

/** Tokens handed out once; only their sha256 is kept. */
export const newAgentToken = () => `wsa_${randomToken(43)}`;
export const newClaimToken = () => `wsc_${randomToken(43)}`;
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(hashToken(a));
  const y = Buffer.from(hashToken(b));
  return timingSafeEqual(x, y);
}
