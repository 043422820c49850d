import { describe, expect, it } from 'vitest';
import { checkDestination, parseAllowList, parseDenyList, type Resolver } from '../src/check.js';

const table: Record<string, string[]> = {
  'public.example': ['93.184.216.34'],
  'dual.example': ['93.184.216.34', '2606:2800:220:1::1'],
  'internal.example': ['10.0.0.5'],
  'sneaky.example': ['93.184.216.34', '127.0.0.1'],
  'metadata.example': ['169.254.169.254'],
  'mapped.example': ['::ffff:192.168.1.1'],
};
const resolver: Resolver = async (host) => {
  const found = table[host];
  if (!found) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

describe('checkDestination', () => {
  it('allows a public name and names the exact address to connect to', async () => {
    const r = await checkDestination({ host: 'Public.Example.', port: 443 }, { resolve: resolver });
    expect(r).toEqual({
      allowed: true,
      host: 'public.example',
      port: 443,
      address: '93.184.216.34',
      family: 4,
      via: 'public',
    });
  });

  it('allows public IP literals without resolving', async () => {
    const never: Resolver = async () => {
      throw new Error('must not resolve');
    };
    expect((await checkDestination({ host: '8.8.8.8', port: 53 }, { resolve: never })).allowed).toBe(true);
    expect((await checkDestination({ host: '[2606:4700:4700::1111]', port: 443 }, { resolve: never })).allowed).toBe(
      true,
    );
  });

  it('refuses names that resolve to private, link-local or mapped private addresses', async () => {
    for (const [host, kind] of [
      ['internal.example', 'private'],
      ['metadata.example', 'link_local'],
      ['mapped.example', 'private'],
    ] as const) {
      const r = await checkDestination({ host, port: 80 }, { resolve: resolver });
      expect(r).toMatchObject({ allowed: false, reason: 'not_public', kind });
      if (!r.allowed) expect(r.message).toContain(`${host} resolves to`);
    }
  });

  it('refuses a name when any of its addresses is not public', async () => {
    const r = await checkDestination({ host: 'sneaky.example', port: 443 }, { resolve: resolver });
    expect(r).toMatchObject({ allowed: false, reason: 'not_public', address: '127.0.0.1', kind: 'loopback' });
  });

  it('refuses private literals, unresolvable names and bad destinations', async () => {
    expect(await checkDestination({ host: '127.0.0.1', port: 80 }, { resolve: resolver })).toMatchObject({
      allowed: false,
      reason: 'not_public',
      message: expect.stringContaining('127.0.0.1 is a loopback address'),
    });
    expect(await checkDestination({ host: '[::1]', port: 80 }, { resolve: resolver })).toMatchObject({
      kind: 'loopback',
    });
    expect(await checkDestination({ host: 'nope.example', port: 80 }, { resolve: resolver })).toMatchObject({
      allowed: false,
      reason: 'unresolvable',
      message: expect.stringContaining('ENOTFOUND'),
    });
    expect(await checkDestination({ host: 'public.example', port: 0 }, { resolve: resolver })).toMatchObject({
      reason: 'invalid_destination',
    });
    expect(await checkDestination({ host: 'a b', port: 80 }, { resolve: resolver })).toMatchObject({
      reason: 'invalid_destination',
    });
    expect(await checkDestination({ host: 'fe80::1%eth0', port: 80 }, { resolve: resolver })).toMatchObject({
      reason: 'invalid_destination',
    });
  });

  it('resolves localhost-like names with the system resolver and refuses them', async () => {
    const r = await checkDestination({ host: 'localhost', port: 80 });
    expect(r).toMatchObject({ allowed: false, reason: 'not_public', kind: 'loopback' });
  });

  it('honours the allow-list by CIDR, address, host name and port', async () => {
    const allow = parseAllowList(['10.0.0.0/8', '127.0.0.1:8080', 'metadata.example', '[::1]:9000']);
    expect(await checkDestination({ host: 'internal.example', port: 80 }, { resolve: resolver, allow })).toMatchObject({
      allowed: true,
      address: '10.0.0.5',
      via: 'allow_list',
    });
    expect((await checkDestination({ host: '127.0.0.1', port: 8080 }, { resolve: resolver, allow })).allowed).toBe(
      true,
    );
    expect((await checkDestination({ host: '127.0.0.1', port: 8081 }, { resolve: resolver, allow })).allowed).toBe(
      false,
    );
    expect((await checkDestination({ host: 'metadata.example', port: 1 }, { resolve: resolver, allow })).allowed).toBe(
      true,
    );
    expect((await checkDestination({ host: '::1', port: 9000 }, { resolve: resolver, allow })).allowed).toBe(true);
    expect((await checkDestination({ host: '::1', port: 9001 }, { resolve: resolver, allow })).allowed).toBe(false);
  });

  it("refuses denied addresses (the host's own) even when public or allow-listed, also through names and mapped forms", async () => {
    const deny = parseDenyList(['93.184.216.34', '2606:2800:220:1::/64']);
    const allow = parseAllowList(['93.184.216.34']);
    expect(
      await checkDestination({ host: '93.184.216.34', port: 5432 }, { resolve: resolver, deny, allow }),
    ).toMatchObject({
      allowed: false,
      reason: 'denied',
      address: '93.184.216.34',
      message: '93.184.216.34 is an address this proxy never reaches',
    });
    expect(await checkDestination({ host: 'dual.example', port: 443 }, { resolve: resolver, deny })).toMatchObject({
      reason: 'denied',
      message: expect.stringContaining('dual.example resolves to 93.184.216.34'),
    });
    expect(
      await checkDestination({ host: '::ffff:93.184.216.34', port: 80 }, { resolve: resolver, deny }),
    ).toMatchObject({
      reason: 'denied',
    });
    expect(await checkDestination({ host: '2606:2800:220:1::9', port: 80 }, { resolve: resolver, deny })).toMatchObject(
      {
        reason: 'denied',
      },
    );
    expect((await checkDestination({ host: '8.8.8.8', port: 53 }, { resolve: resolver, deny })).allowed).toBe(true);
    expect(() => parseDenyList(['example.com'])).toThrow('not an IP or CIDR');
  });

  it('rejects malformed allow-list entries', () => {
    expect(() => parseAllowList(['10.0.0.0/99'])).toThrow('bad CIDR');
    expect(() => parseAllowList(['host:70000'])).toThrow('bad port');
    expect(() => parseAllowList(['http://x'])).toThrow('not a host');
  });
});
