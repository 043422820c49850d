import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../src/catalog.js';
import { HetznerProvider } from '../src/providers/hetzner.js';
import { HetznerClient } from '../src/providers/hetzner-client.js';
import { parsePublicKey } from '../src/ssh-keys.js';
import { ssh, sshKeyPair } from './helpers.js';

/**
 * A real server on Hetzner Cloud (costs a few cents): runs only when HETZNER_TOKEN is set, and removes
 * everything it made.
 */
const token = process.env.HETZNER_TOKEN;
if (!token) console.warn('Hetzner live smoke test skipped: set HETZNER_TOKEN to run it');

describe.runIf(token)('Hetzner Cloud, live', () => {
  it('creates a server with a key, SSHes in, powers it off and on, and deletes it', { timeout: 900_000 }, async () => {
    const client = new HetznerClient({
      token: token as string,
      ...(process.env.HETZNER_API_URL ? { baseUrl: process.env.HETZNER_API_URL } : {}),
    });
    const provider = new HetznerProvider({ client, catalog: DEFAULT_CATALOG });
    const keys = await sshKeyPair();
    const parsed = parsePublicKey(keys.publicKey);
    const serverId = `srv_${randomBytes(16).toString('hex').slice(0, 22)}`;
    let providerId: string | undefined;
    try {
      const created = await provider.create({
        serverId,
        name: 'spawn-smoke',
        type: DEFAULT_CATALOG.types.small as never,
        image: 'debian-12',
        location: process.env.HETZNER_LOCATION ?? 'nbg1',
        sshKeys: [{ id: `key_${serverId.slice(4)}`, name: 'smoke', publicKey: parsed.normalized, md5: parsed.md5 }],
        userData: '#!/bin/sh\necho ran > /root/user-data-ran\n',
        labels: { wallet: '0x8ba1f109551bD432803012645Ac136ddd64DBA72', 'spawn-id': serverId },
      });
      providerId = created.server.providerId;
      expect(created.server.status).toBe('running');
      const endpoint = created.server.ssh as { host: string; port: number; user: string };
      let result = await ssh(keys.privateKey, endpoint, 'cat /root/user-data-ran 2>/dev/null || echo pending');
      for (let i = 0; i < 30 && result.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 5_000));
        result = await ssh(keys.privateKey, endpoint, 'cat /root/user-data-ran 2>/dev/null || echo pending');
      }
      expect(result.code).toBe(0);
      await provider.shutdown(providerId);
      expect((await provider.get(providerId))?.status).toBe('off');
      await provider.powerOn(providerId);
      expect((await provider.get(providerId))?.status).toBe('running');
      expect((await provider.list()).map((s) => s.providerId)).toContain(providerId);
    } finally {
      if (providerId) await provider.delete(providerId);
      await provider.removeSshKey(parsed.md5);
      await keys.cleanup();
    }
  });
});
