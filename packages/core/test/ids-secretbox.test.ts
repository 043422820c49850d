import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isId, newId } from '../src/ids.js';
import { createSecretBox, loadOrCreateMasterSecret } from '../src/secretbox.js';

describe('ids', () => {
  it('are prefixed, URL-safe and unique', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId('mbx')));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(isId('mbx', id)).toBe(true);
    expect(isId('srv', [...ids][0] as string)).toBe(false);
    expect(() => newId('Bad-Prefix')).toThrow();
  });
});

describe('secret box', () => {
  const master = Buffer.alloc(32, 7);
  it('round-trips and binds to purpose and associated data', () => {
    const keys = createSecretBox(master, 'wallet-keys');
    const sealed = keys.seal('0xdeadbeef', '0xabc');
    expect(sealed).not.toContain('deadbeef');
    expect(keys.openText(sealed, '0xabc')).toBe('0xdeadbeef');
    expect(() => keys.open(sealed, '0xother')).toThrow();
    expect(() => createSecretBox(master, 'oauth-tokens').open(sealed, '0xabc')).toThrow();
    const tampered = `${sealed.slice(0, -2)}AA`;
    expect(() => keys.open(tampered, '0xabc')).toThrow();
  });

  const dir = mkdtemp(join(tmpdir(), 'secretbox-'));
  afterAll(async () => rm(await dir, { recursive: true, force: true }));

  it('creates the embedded master secret once, mode 0600', async () => {
    const path = join(await dir, 'nested', 'master.key');
    const first = await loadOrCreateMasterSecret(path);
    const second = await loadOrCreateMasterSecret(path);
    expect(first.equals(second)).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readFile(path, 'utf8')).trim()).toHaveLength(64);
  });

  it('refuses a master secret file others can read', async () => {
    const path = join(await dir, 'open.key');
    await writeFile(path, `${'ab'.repeat(32)}\n`, { mode: 0o644 });
    await expect(loadOrCreateMasterSecret(path)).rejects.toThrow('chmod 600');
  });
});
