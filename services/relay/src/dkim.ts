import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { SecretBox } from '@agentstack/core';

const generate = promisify(generateKeyPair);

/** A domain's DKIM key as the signer needs it. */
export interface DkimKey {
  domain: string;
  selector: string;
  privateKeyPem: string;
}

export interface GeneratedDkimKey {
  selector: string;
  /** base64 DER SubjectPublicKeyInfo: the `p=` of the DNS record. */
  publicKey: string;
  privateKeyPem: string;
}

/**
 * A fresh RSA-2048 key (the size receivers universally accept; Ed25519 DKIM is still not verified
 * everywhere). The selector is unique per key so a new registration never collides with an old record.
 */
export async function generateDkimKey(selectorPrefix = 'relay'): Promise<GeneratedDkimKey> {
  const { publicKey, privateKey } = await generate('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    selector: `${selectorPrefix}-${randomBytes(5).toString('hex')}`,
    publicKey: Buffer.from(publicKey).toString('base64'),
    privateKeyPem: privateKey,
  };
}

/** The TXT value publishing a DKIM public key. */
export const dkimRecordValue = (publicKey: string) => `v=DKIM1; k=rsa; p=${publicKey}`;

/** Private keys are sealed with the domain name as associated data: a sealed key moved to another row fails to open. */
export const sealDkimKey = (box: SecretBox, domain: string, pem: string) => box.seal(pem, `dkim:${domain}`);
export const openDkimKey = (box: SecretBox, domain: string, sealed: string) => box.openText(sealed, `dkim:${domain}`);
