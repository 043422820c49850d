import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * AES-256-GCM encryption of secrets at rest (private keys, OAuth tokens, DKIM keys).
 * Each purpose gets its own key, derived from one master secret with HKDF, so a key
 * leaked from one table cannot open another. Sealed values look like `v1.<iv>.<tag>.<ciphertext>`.
 */
export interface SecretBox {
  seal(plaintext: string | Uint8Array, associatedData?: string): string;
  open(sealed: string, associatedData?: string): Buffer;
  openText(sealed: string, associatedData?: string): string;
}

export function createSecretBox(masterSecret: Uint8Array, purpose: string): SecretBox {
  if (masterSecret.length < 32) throw new Error('master secret must be at least 32 bytes');
  const key = Buffer.from(hkdfSync('sha256', masterSecret, Buffer.alloc(0), `agentstack:${purpose}`, 32));
  const open = (sealed: string, associatedData?: string): Buffer => {
    const [version, iv, tag, data] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || data === undefined) throw new Error('not a sealed value');
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    if (associatedData !== undefined) decipher.setAAD(Buffer.from(associatedData));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]);
  };
  return {
    seal(plaintext, associatedData) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      if (associatedData !== undefined) cipher.setAAD(Buffer.from(associatedData));
      const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return [
        'v1',
        iv.toString('base64url'),
        cipher.getAuthTag().toString('base64url'),
        data.toString('base64url'),
      ].join('.');
    },
    open,
    openText: (sealed, associatedData) => open(sealed, associatedData).toString('utf8'),
  };
}

/** Parses a master secret given as 64 hex characters (optionally 0x-prefixed). */
export function masterSecretFromHex(hex: string): Buffer {
  const clean = hex.startsWith('0x') ? hex.slice(2) : hex;
  if (!/^[0-9a-fA-F]{64}$/.test(clean)) throw new Error('master secret must be 32 bytes of hex');
  return Buffer.from(clean, 'hex');
}

/**
 * The embedded default: a master secret generated once into the data directory, readable only by its owner.
 * Refuses to use a file that others can read.
 */
export async function loadOrCreateMasterSecret(path: string): Promise<Buffer> {
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new Error(`${path} must not be readable by group or others (chmod 600 it)`);
    }
    return masterSecretFromHex((await readFile(path, 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32);
  try {
    await writeFile(path, `${secret.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateMasterSecret(path);
    throw err;
  }
  await chmod(path, 0o600);
  return secret;
}
