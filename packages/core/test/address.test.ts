import { describe, expect, it } from 'vitest';
import { type AddressKind, cidrContains, classifyAddress, isPublicAddress, parseCidr } from '../src/address.js';

const cases: [string, AddressKind][] = [
  // IPv4 public
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['93.184.216.34', 'public'],
  ['172.15.255.255', 'public'],
  ['172.32.0.0', 'public'],
  ['100.63.255.255', 'public'],
  ['100.128.0.0', 'public'],
  ['192.169.0.1', 'public'],
  ['223.255.255.255', 'public'],
  ['198.20.0.1', 'public'],
  // IPv4 non-global
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['127.0.0.1', 'loopback'],
  ['127.8.9.10', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'link_local'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'documentation'],
  ['192.88.99.1', 'reserved'],
  ['192.168.1.1', 'private'],
  ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['239.255.255.255', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  // IPv6 public
  ['2606:4700:4700::1111', 'public'],
  ['2a00:1450:4001:80b::200e', 'public'],
  ['2001:4860:4860::8888', 'public'],
  ['2a00:1450:4001:81b::200e', 'public'],
  // IPv6 non-global
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['fe80::1', 'link_local'],
  ['fe80::1%eth0', 'link_local'],
  ['febf::1', 'link_local'],
  ['fec0::1', 'private'],
  ['fc00::1', 'unique_local'],
  ['fd12:3456:789a::1', 'unique_local'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation'],
  ['2001::1', 'reserved'],
  ['2001:2::1', 'benchmarking'],
  ['2002:7f00:1::1', 'reserved'],
  ['2002:c0a8:0101::1', 'reserved'],
  ['2002:808:808::1', 'reserved'],
  ['64:ff9b:1::1', 'private'],
  ['100::1', 'reserved'],
  ['::2', 'reserved'],
  ['4000::1', 'reserved'],
  // IPv4 embedded in IPv6: the IPv4 address decides
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:10.1.2.3', 'private'],
  ['::ffff:169.254.169.254', 'link_local'],
  ['::ffff:8.8.8.8', 'public'],
  ['64:ff9b::10.0.0.1', 'private'],
  ['64:ff9b::a00:1', 'private'],
  ['64:ff9b::808:808', 'public'],
  ['[::1]', 'loopback'],
  // not IPs
  ['localhost', 'invalid'],
  ['not an ip', 'invalid'],
  ['1.2.3', 'invalid'],
  ['01.2.3.4', 'invalid'],
  ['1.2.3.4.5', 'invalid'],
  ['', 'invalid'],
];

describe('classifyAddress', () => {
  it.each(cases)('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip).kind).toBe(kind);
    expect(isPublicAddress(ip)).toBe(kind === 'public');
  });

  it('names the embedded IPv4 address', () => {
    expect(classifyAddress('::ffff:192.168.0.1')).toEqual({ kind: 'private', family: 6, embedded: '192.168.0.1' });
  });
});

describe('CIDR matching', () => {
  it('matches inside the block only', () => {
    const v4 = parseCidr('10.1.0.0/16')!;
    expect(cidrContains(v4, '10.1.200.3')).toBe(true);
    expect(cidrContains(v4, '10.2.0.1')).toBe(false);
    expect(cidrContains(v4, '::ffff:10.1.0.1')).toBe(false);
    const v6 = parseCidr('fd00::/8')!;
    expect(cidrContains(v6, 'fd12::1')).toBe(true);
    expect(cidrContains(v6, 'fe80::1')).toBe(false);
    const single = parseCidr('127.0.0.1')!;
    expect(cidrContains(single, '127.0.0.1')).toBe(true);
    expect(cidrContains(single, '127.0.0.2')).toBe(false);
  });

  it('rejects malformed blocks', () => {
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', 'fd00::/129', 'example.com/8', '10.0.0.0/']) {
      expect(parseCidr(bad)).toBeUndefined();
    }
  });
});
