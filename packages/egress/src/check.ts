import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type AddressKind, type Cidr, cidrContains, classifyAddress, parseCidr } from './address.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a hostname to every address it has. Injected in tests; the default asks the system resolver. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/**
 * Destinations that may be reached although they are not public: `127.0.0.1`, `10.0.0.0/8`, `::1`,
 * `internal.example` (a hostname, matched exactly, case-insensitive), each optionally with `:port`
 * (`[::1]:8080` for IPv6). Meant for tests and for operators who run a known internal mirror.
 */
export interface AllowList {
  matches(destination: { host: string; port: number; address: string }): boolean;
  readonly entries: readonly string[];
}

interface AllowEntry {
  cidr?: Cidr;
  host?: string;
  port?: number;
}

export function parseAllowList(entries: readonly string[]): AllowList {
  const parsed = entries.map((raw): AllowEntry => {
    const entry = raw.trim();
    let hostPart = entry;
    let port: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      hostPart = bracketed[1]!;
      port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
    } else if (/^[^:]+:\d+$/.test(entry)) {
      const [h, p] = entry.split(':') as [string, string];
      hostPart = h;
      port = Number(p);
    }
    if (port !== undefined && (port < 1 || port > 65535)) throw new Error(`allow-list entry "${raw}": bad port`);
    const cidr = parseCidr(hostPart);
    if (cidr) return { cidr, ...(port === undefined ? {} : { port }) };
    if (hostPart.includes('/') && parseCidr(hostPart.split('/')[0] ?? ''))
      throw new Error(`allow-list entry "${raw}": bad CIDR`);
    if (!/^[a-z0-9.-]+$/i.test(hostPart)) throw new Error(`allow-list entry "${raw}": not a host, IP or CIDR`);
    return { host: normalizeHost(hostPart), ...(port === undefined ? {} : { port }) };
  });
  return {
    entries: [...entries],
    matches({ host, port, address }) {
      return parsed.some((e) => {
        if (e.port !== undefined && e.port !== port) return false;
        if (e.cidr) return cidrContains(e.cidr, address);
        return e.host === normalizeHost(host);
      });
    },
  };
}

function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

export type RefusalReason = 'not_public' | 'denied' | 'unresolvable' | 'invalid_destination';

/**
 * Addresses never reached, public or not: IPs or CIDRs. For the machine's own addresses — a server with a
 * public IP would otherwise let a proxied client reach its own services on that IP.
 */
export interface DenyList {
  matches(address: string): boolean;
  readonly entries: readonly string[];
}

export function parseDenyList(entries: readonly string[]): DenyList {
  const cidrs = entries.map((raw) => {
    const cidr = parseCidr(raw.trim());
    if (!cidr) throw new Error(`deny-list entry "${raw}": not an IP or CIDR`);
    return cidr;
  });
  return {
    entries: [...entries],
    matches(address) {
      // An IPv4-mapped IPv6 address leads to the same IPv4 host.
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
      return cidrs.some((c) => cidrContains(c, address) || (mapped !== undefined && cidrContains(c, mapped)));
    },
  };
}

export type DestinationCheck =
  | { allowed: true; host: string; port: number; address: string; family: 4 | 6; via: 'public' | 'allow_list' }
  | {
      allowed: false;
      host: string;
      port: number;
      reason: RefusalReason;
      /** For `not_public`: the address that was refused and what it is. */
      address?: string;
      kind?: AddressKind;
      message: string;
    };

export interface CheckOptions {
  resolve?: Resolver;
  allow?: AllowList;
  /** Wins over `allow` and over being public. */
  deny?: DenyList;
}

/**
 * Decides whether `host:port` may be reached and which exact address to connect to. The caller must connect
 * to `address` (never re-resolve `host`), so a name that answers differently the second time (DNS
 * rebinding) cannot slip through. A name with any non-public address is refused as a whole.
 */
export async function checkDestination(
  destination: { host: string; port: number },
  { resolve = systemResolver, allow, deny }: CheckOptions = {},
): Promise<DestinationCheck> {
  const host = normalizeHost(destination.host);
  const port = destination.port;
  const refuse = (reason: RefusalReason, message: string, extra: { address?: string; kind?: AddressKind } = {}) =>
    ({ allowed: false, host, port, reason, message, ...extra }) as const;

  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return refuse('invalid_destination', `port ${destination.port} is not a TCP port`);
  }
  if (host === '' || host.includes('%') || (!isIP(host) && !/^[a-z0-9_.-]+$/.test(host))) {
    return refuse('invalid_destination', `"${destination.host}" is not a valid host name`);
  }

  let addresses: ResolvedAddress[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await resolve(host);
    } catch (err) {
      const code = (err as { code?: string }).code;
      return refuse('unresolvable', `${host} could not be resolved${code ? ` (${code})` : ''}`);
    }
    if (addresses.length === 0) return refuse('unresolvable', `${host} has no addresses`);
  }

  const first = addresses[0]!;
  const denied = deny && addresses.find((a) => deny.matches(a.address));
  if (denied) {
    const named = denied.address === host ? denied.address : `${host} resolves to ${denied.address}, which`;
    return refuse('denied', `${named} is an address this proxy never reaches`, { address: denied.address });
  }
  if (allow && addresses.every((a) => allow.matches({ host, port, address: a.address }))) {
    return { allowed: true, host, port, address: first.address, family: first.family, via: 'allow_list' };
  }
  for (const a of addresses) {
    const { kind } = classifyAddress(a.address);
    if (kind !== 'public' && !allow?.matches({ host, port, address: a.address })) {
      const named = a.address === host ? a.address : `${host} resolves to ${a.address}, which`;
      return refuse(
        'not_public',
        `${named} is a ${kind.replace('_', '-')} address; only public addresses may be reached`,
        {
          address: a.address,
          kind,
        },
      );
    }
  }
  return { allowed: true, host, port, address: first.address, family: first.family, via: 'public' };
}
