import { isIPv4, isIPv6 } from 'node:net';

/**
 * What kind of address an IP is. Only `public` may be reached by tenant traffic (egress) or by user-given
 * URLs (`createSafeFetch`); everything else is either local to some network (loopback, private, link-local,
 * CGNAT, ULA), not a unicast destination (multicast, broadcast, unspecified) or set aside by the IANA
 * special-purpose registries.
 */
export type AddressKind =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'cgnat'
  | 'unique_local'
  | 'multicast'
  | 'broadcast'
  | 'unspecified'
  | 'documentation'
  | 'benchmarking'
  | 'reserved'
  | 'invalid';

export interface AddressClass {
  kind: AddressKind;
  family: 4 | 6 | 0;
  /** For IPv4 embedded in IPv6 (`::ffff:a.b.c.d`, NAT64): the IPv4 address that decided the kind. */
  embedded?: string;
}

interface Range {
  base: bigint;
  bits: number;
  kind: AddressKind;
}

const V4_BITS = 32;
const V6_BITS = 128;

/** Parses dotted-quad IPv4 (exactly four decimal parts, as `net.isIPv4` accepts) into a 32-bit integer. */
function parseV4(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** Parses an IPv6 literal (with `::`, an optional trailing dotted IPv4 and an optional `%zone`). */
function parseV6(ip: string): bigint {
  let text = ip.split('%')[0]!;
  const lastColon = text.lastIndexOf(':');
  const dotted = text.slice(lastColon + 1);
  if (dotted.includes('.')) {
    // Rewrite the trailing dotted quad as two hex groups so one parser handles both spellings.
    const v4 = parseV4(dotted);
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  const toGroups = (s: string) => (s === '' ? [] : s.split(':').map((g) => BigInt(`0x${g}`)));
  const left = toGroups(halves[0] ?? '');
  const right = halves.length > 1 ? toGroups(halves[1] ?? '') : [];
  const groups = [...left, ...Array<bigint>(8 - left.length - right.length).fill(0n), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

function range(cidr: string, kind: AddressKind): Range {
  const [ip, bits] = cidr.split('/') as [string, string];
  return { base: isIPv4(ip) ? parseV4(ip) : parseV6(ip), bits: Number(bits), kind };
}

function inRange(value: bigint, width: number, r: Range): boolean {
  const shift = BigInt(width - r.bits);
  return value >> shift === r.base >> shift;
}

// IANA IPv4 Special-Purpose Address Registry, minus the few entries that are globally reachable anycast.
const V4_RANGES: Range[] = [
  range('0.0.0.0/8', 'unspecified'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'cgnat'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link_local'),
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'reserved'),
  range('192.0.2.0/24', 'documentation'),
  range('192.88.99.0/24', 'reserved'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('255.255.255.255/32', 'broadcast'),
  range('240.0.0.0/4', 'reserved'),
];

// Only 2000::/3 is allocated as global unicast; inside it these blocks are not reachable destinations.
const V6_GLOBAL = range('2000::/3', 'public');
const V6_RANGES: Range[] = [
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('64:ff9b:1::/48', 'private'),
  range('fc00::/7', 'unique_local'),
  range('fe80::/10', 'link_local'),
  range('fec0::/10', 'private'),
  range('ff00::/8', 'multicast'),
  range('2001:db8::/32', 'documentation'),
  range('3fff::/20', 'documentation'),
  range('2001:2::/48', 'benchmarking'),
  range('2001::/23', 'reserved'),
  range('2002::/16', 'reserved'),
];
const V4_MAPPED = range('::ffff:0:0/96', 'reserved');
const NAT64 = range('64:ff9b::/96', 'reserved');

function classifyV4(value: bigint): AddressKind {
  return V4_RANGES.find((r) => inRange(value, V4_BITS, r))?.kind ?? 'public';
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
}

/** Classifies one IP address literal (IPv4, IPv6, IPv6 with a zone). Anything that is not an IP is `invalid`. */
export function classifyAddress(ip: string): AddressClass {
  const text = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  if (isIPv4(text)) return { kind: classifyV4(parseV4(text)), family: 4 };
  if (!isIPv6(text)) return { kind: 'invalid', family: 0 };
  const value = parseV6(text);
  // IPv4 reached through IPv6: the IPv4 address is the real destination.
  if (inRange(value, V6_BITS, V4_MAPPED) || inRange(value, V6_BITS, NAT64)) {
    const v4 = value & 0xffffffffn;
    return { kind: classifyV4(v4), family: 6, embedded: formatV4(v4) };
  }
  const special = V6_RANGES.find((r) => inRange(value, V6_BITS, r));
  if (special) return { kind: special.kind, family: 6 };
  return { kind: inRange(value, V6_BITS, V6_GLOBAL) ? 'public' : 'reserved', family: 6 };
}

/** True only for globally routable unicast addresses. */
export function isPublicAddress(ip: string): boolean {
  return classifyAddress(ip).kind === 'public';
}

/** A CIDR block (`10.0.0.0/8`, `fd00::/8`) or a single address, for allow-lists. */
export interface Cidr {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const [ip = '', bitsText] = text.split('/');
  const family = isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : 0;
  if (family === 0) return undefined;
  const width = family === 4 ? V4_BITS : V6_BITS;
  const bits = bitsText === undefined ? width : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > width || (bitsText !== undefined && !/^\d+$/.test(bitsText))) {
    return undefined;
  }
  return { family, base: family === 4 ? parseV4(ip) : parseV6(ip), bits };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const family = isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : 0;
  if (family !== cidr.family) return false;
  const width = family === 4 ? V4_BITS : V6_BITS;
  const value = family === 4 ? parseV4(ip) : parseV6(ip);
  return inRange(value, width, { base: cidr.base, bits: cidr.bits, kind: 'public' });
}
