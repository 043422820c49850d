import { createCipheriv, createDecipheriv, randomBytes, type ScryptOptions, scrypt as scryptCb } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Hex, LocalAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/**
 * A local encrypted keystore for an agent that holds its own key: one JSON file, mode 0600, the key sealed
 * with AES-256-GCM under a key derived from a password by scrypt. The address is stored in the clear (and
 * authenticated as associated data) so tools can show it without the password.
 */
export interface KeystoreFile {
  version: 1;
  address: `0x${string}`;
  crypto: {
    kdf: 'scrypt';
    kdfparams: { N: number; r: number; p: number; dklen: 32; salt: string };
    cipher: 'aes-256-gcm';
    iv: string;
    tag: string;
    ciphertext: string;
  };
}

/** N = 2^15, r = 8: about 32 MiB and a few hundred milliseconds per unlock. */
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;

export class KeystoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeystoreError';
  }
}

function scrypt(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFKC'), salt, 32, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Encrypts `privateKey` (default: a new one) into a keystore object. */
export async function encryptKey(
  password: string,
  privateKey: Hex = generatePrivateKey(),
  params: { N: number; r: number; p: number } = DEFAULT_SCRYPT,
): Promise<KeystoreFile> {
  if (password.length < 8) throw new KeystoreError('the keystore password must be at least 8 characters');
  const { address } = privateKeyToAccount(privateKey);
  const salt = randomBytes(32);
  const key = await scrypt(password, salt, params);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(address));
  const ciphertext = Buffer.concat([cipher.update(Buffer.from(privateKey.slice(2), 'hex')), cipher.final()]);
  return {
    version: 1,
    address,
    crypto: {
      kdf: 'scrypt',
      kdfparams: { ...params, dklen: 32, salt: salt.toString('hex') },
      cipher: 'aes-256-gcm',
      iv: iv.toString('hex'),
      tag: cipher.getAuthTag().toString('hex'),
      ciphertext: ciphertext.toString('hex'),
    },
  };
}

export async function decryptKey(file: KeystoreFile, password: string): Promise<Hex> {
  if (file.version !== 1 || file.crypto?.kdf !== 'scrypt' || file.crypto.cipher !== 'aes-256-gcm') {
    throw new KeystoreError('not a keystore this SDK understands');
  }
  const { N, r, p, salt } = file.crypto.kdfparams;
  const key = await scrypt(password, Buffer.from(salt, 'hex'), { N, r, p });
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(file.crypto.iv, 'hex'));
  decipher.setAAD(Buffer.from(file.address));
  decipher.setAuthTag(Buffer.from(file.crypto.tag, 'hex'));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(Buffer.from(file.crypto.ciphertext, 'hex')), decipher.final()]);
  } catch {
    throw new KeystoreError('wrong password (or the keystore file was altered)');
  }
  const privateKey = `0x${plain.toString('hex')}` as Hex;
  if (privateKeyToAccount(privateKey).address !== file.address) throw new KeystoreError('keystore address mismatch');
  return privateKey;
}

/** Writes a new keystore file (mode 0600, never over an existing file unless `overwrite`). */
export async function createKeystore(
  path: string,
  password: string,
  options: { privateKey?: Hex; overwrite?: boolean; params?: { N: number; r: number; p: number } } = {},
): Promise<{ address: `0x${string}` }> {
  const file = await encryptKey(password, options.privateKey, options.params);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: options.overwrite ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new KeystoreError(`${path} already exists`);
    throw err;
  }
  await chmod(path, 0o600);
  return { address: file.address };
}

export async function readKeystore(path: string): Promise<KeystoreFile> {
  const info = await stat(path).catch(() => {
    throw new KeystoreError(`no keystore at ${path}`);
  });
  if ((info.mode & 0o077) !== 0) {
    throw new KeystoreError(`${path} is readable by others; chmod 600 it first`);
  }
  return JSON.parse(await readFile(path, 'utf8')) as KeystoreFile;
}

/** Opens a keystore file into a signing account. */
export async function unlockKeystore(path: string, password: string): Promise<LocalAccount> {
  return privateKeyToAccount(await decryptKey(await readKeystore(path), password));
}
