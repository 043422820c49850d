import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKeystore,
  decryptKey,
  encryptKey,
  KeystoreError,
  readKeystore,
  unlockKeystore,
} from '../src/keystore.js';

let dir: string;
// Cheaper scrypt for the round trips; the default parameters are exercised once below.
const fast = { N: 2 ** 12, r: 8, p: 1 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sdk-keystore-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('local keystore', () => {
  it('writes an encrypted key with mode 0600 that only the password opens', async () => {
    const privateKey = generatePrivateKey();
    const path = join(dir, 'agent.json');
    const { address } = await createKeystore(path, 'correct horse battery', { privateKey, params: fast });
    expect(address).toBe(privateKeyToAccount(privateKey).address);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    expect(text).not.toContain(privateKey.slice(2));
    expect(JSON.parse(text)).toMatchObject({ version: 1, address, crypto: { kdf: 'scrypt', cipher: 'aes-256-gcm' } });
    const account = await unlockKeystore(path, 'correct horse battery');
    expect(account.address).toBe(address);
    await expect(unlockKeystore(path, 'wrong horse battery')).rejects.toThrow(/wrong password/);
  });

  it('uses scrypt with sound defaults, and refuses short passwords', async () => {
    const file = await encryptKey('long enough password');
    expect(file.crypto.kdfparams).toMatchObject({ N: 32768, r: 8, p: 1, dklen: 32 });
    expect(await decryptKey(file, 'long enough password')).toMatch(/^0x[0-9a-f]{64}$/);
    await expect(encryptKey('short')).rejects.toBeInstanceOf(KeystoreError);
  });

  it('detects tampering (the address is authenticated too) and never overwrites by accident', async () => {
    const path = join(dir, 'tamper.json');
    await createKeystore(path, 'password-123', { params: fast });
    await expect(createKeystore(path, 'password-123', { params: fast })).rejects.toThrow(/already exists/);
    const file = await readKeystore(path);
    const other = privateKeyToAccount(generatePrivateKey()).address;
    await writeFile(path, JSON.stringify({ ...file, address: other }), { mode: 0o600 });
    await expect(unlockKeystore(path, 'password-123')).rejects.toBeInstanceOf(KeystoreError);
  });

  it('refuses a keystore file others can read', async () => {
    const path = join(dir, 'open.json');
    await createKeystore(path, 'password-123', { params: fast });
    await chmod(path, 0o644);
    await expect(unlockKeystore(path, 'password-123')).rejects.toThrow(/chmod 600/);
  });
});
