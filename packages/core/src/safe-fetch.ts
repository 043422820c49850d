import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * `fetch` for URLs a caller gave us (webhooks, pay-on-behalf): only public http(s) destinations.
 *
 * Every hop is resolved once, every resolved address is checked, and the connection goes to the address that
 * was checked (a custom `lookup`), so a name that answers differently the second time (DNS rebinding) cannot
 * slip through. Redirects are followed by hand, re-checked, capped, and drop credentials across origins.
 * Response bodies are capped.
 */

export type ResolvedAddress = { address: string; family: 4 | 6 };
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface SafeFetchOptions {
  /**
   * Hostnames or IP literals that may be reached even when they resolve to private addresses (an operator's
   * allow-list, e.g. for tests or an internal service). Exact match, case-insensitive.
   */
  allowHosts?: string[];
  /** Default: the system resolver (`dns.lookup`, all addresses). Injectable for tests. */
  resolve?: Resolver;
  /** Default 5. */
  maxRedirects?: number;
  /** Default 5 MiB; a larger body fails with `ResponseTooLargeError`. */
  maxResponseBytes?: number;
  /** Whole request including redirects; default 30 s. */
  timeoutMs?: number;
}

export type SafeFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Why a destination was refused; `reason` is one of the `BlockedReason`s. */
export class BlockedDestinationError extends Error {
  readonly code = 'blocked_destination';
  constructor(
    readonly url: string,
    readonly reason: string,
    readonly address?: string,
  ) {
    super(`refusing to fetch ${url}: ${reason}${address ? ` (${address})` : ''}`);
    this.name = 'BlockedDestinationError';
  }
}

export class ResponseTooLargeError extends Error {
  readonly code = 'response_too_large';
  constructor(readonly limit: number) {
    super(`response body exceeds ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

export class TooManyRedirectsError extends Error {
  readonly code = 'too_many_redirects';
  constructor(readonly limit: number) {
    super(`more than ${limit} redirects`);
    this.name = 'TooManyRedirectsError';
  }
}

// Not globally reachable (IANA special-purpose registries), so never a destination for user-given URLs.
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID, …)
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}

/** Expands an IPv6 literal to its 8 groups (no zone id). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.split('%')[0]!.toLowerCase();
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const parts = dotted[1]!.split('.').map(Number);
    text =
      text.slice(0, -dotted[1]!.length) +
      `${((parts[0]! << 8) | parts[1]!).toString(16)}:${((parts[2]! << 8) | parts[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  if (tail === undefined ? headGroups.length !== 8 : missing < 0) return undefined;
  const groups = [...headGroups, ...Array(tail === undefined ? 0 : missing).fill('0'), ...tailGroups].map((g) =>
    Number.parseInt(g || '0', 16),
  );
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/** An IPv4 address carried inside an IPv6 one (mapped, compatible, NAT64, 6to4), which must be judged as IPv4. */
function embeddedIpv4(groups: number[]): string | undefined {
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  if (zeros(0, 5) && groups[5] === 0xffff) return v4(groups[6]!, groups[7]!); // ::ffff:a.b.c.d
  if (zeros(0, 6) && (groups[6]! > 0 || groups[7]! > 1)) return v4(groups[6]!, groups[7]!); // ::a.b.c.d
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return v4(groups[6]!, groups[7]!); // NAT64
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!); // 6to4
  return undefined;
}

/** True when `address` (an IP literal) is a public, globally routable unicast address. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !BLOCKED.check(address, 'ipv4');
  if (family !== 6) return false;
  const groups = ipv6Groups(address);
  if (!groups) return false;
  const inner = embeddedIpv4(groups);
  if (inner !== undefined) return isPublicAddress(inner);
  return !BLOCKED.check(address.split('%')[0]!, 'ipv6');
}

const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((r) => ({
    address: r.address,
    family: r.family === 6 ? 6 : 4,
  }));

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Credentials that must not follow a redirect to another origin. */
const CROSS_ORIGIN_STRIP = ['authorization', 'cookie', 'proxy-authorization', 'payment-signature', 'x-payment'];

interface Hop {
  url: URL;
  method: string;
  headers: Headers;
  body: Buffer | undefined;
}

/**
 * The check `createSafeFetch` runs on every hop, on its own: resolves a URL's host once and returns the one
 * address to connect to, or throws `BlockedDestinationError`. Use it to refuse a URL before doing anything
 * (e.g. before charging for a request).
 */
export function createDestinationCheck(
  options: Pick<SafeFetchOptions, 'allowHosts' | 'resolve'> = {},
): (url: URL) => Promise<ResolvedAddress> {
  const allow = new Set((options.allowHosts ?? []).map((h) => h.trim().toLowerCase()).filter(Boolean));
  const resolve = options.resolve ?? systemResolver;
  return async (url) => {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new BlockedDestinationError(url.href, 'only http and https URLs are allowed');
    }
    if (url.username || url.password) {
      throw new BlockedDestinationError(url.href, 'URLs with credentials are not allowed');
    }
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const allowed = allow.has(host) || allow.has(url.host.toLowerCase());
    const literal = isIP(host);
    const addresses: ResolvedAddress[] = literal
      ? [{ address: host, family: literal === 6 ? 6 : 4 }]
      : await resolve(host).catch((err: Error) => {
          throw new BlockedDestinationError(url.href, `cannot resolve ${host}: ${err.message}`);
        });
    if (addresses.length === 0) throw new BlockedDestinationError(url.href, `${host} has no addresses`);
    if (!allowed) {
      // One private answer taints the name: an attacker's DNS could otherwise race us between answers.
      const bad = addresses.find((a) => !isPublicAddress(a.address));
      if (bad) throw new BlockedDestinationError(url.href, 'resolves to a non-public address', bad.address);
    }
    return addresses[0]!;
  };
}

export function createSafeFetch(options: SafeFetchOptions = {}): SafeFetch {
  const destination = createDestinationCheck(options);
  const maxRedirects = options.maxRedirects ?? 5;
  const maxBytes = options.maxResponseBytes ?? 5 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 30_000;

  function send(hop: Hop, target: ResolvedAddress, signal: AbortSignal): Promise<IncomingMessage> {
    const pinned: LookupFunction = (_hostname, opts, callback) => {
      // With autoSelectFamily (Node 20's default) net asks for every address at once.
      if ((opts as { all?: boolean }).all) {
        (callback as (err: null, addresses: ResolvedAddress[]) => void)(null, [target]);
      } else callback(null, target.address, target.family);
    };
    const headers: Record<string, string> = {};
    hop.headers.forEach((value, key) => {
      headers[key] = value;
    });
    if (hop.body) headers['content-length'] = String(hop.body.length);
    const requestFn = hop.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolvePromise, reject) => {
      const req = requestFn(
        hop.url,
        { method: hop.method, headers, lookup: pinned, agent: false, signal },
        resolvePromise,
      );
      req.on('error', reject);
      req.end(hop.body);
    });
  }

  async function readCapped(res: IncomingMessage): Promise<Buffer> {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.destroy();
      throw new ResponseTooLargeError(maxBytes);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        res.destroy();
        throw new ResponseTooLargeError(maxBytes);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  return async (input, init) => {
    const href = input instanceof Request ? input.url : String(input);
    let parsed: URL;
    try {
      parsed = new URL(href);
    } catch {
      throw new BlockedDestinationError(href, 'not a valid absolute URL');
    }
    // Checked before building the Request, which would refuse credentials with a less useful error.
    if (parsed.username || parsed.password) {
      throw new BlockedDestinationError(href, 'URLs with credentials are not allowed');
    }
    const request = new Request(input, init);
    const signal = AbortSignal.any([
      AbortSignal.timeout(timeoutMs),
      ...(init?.signal ? [init.signal] : [request.signal]),
    ]);
    const body = ['GET', 'HEAD'].includes(request.method) ? undefined : Buffer.from(await request.arrayBuffer());
    let hop: Hop = {
      url: new URL(request.url),
      method: request.method,
      headers: new Headers(request.headers),
      body: body && body.length > 0 ? body : undefined,
    };
    for (let redirects = 0; ; redirects++) {
      const target = await destination(hop.url);
      const res = await send(hop, target, signal);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECTS.has(status) && location && request.redirect !== 'manual') {
        res.resume();
        if (request.redirect === 'error') throw new TypeError(`redirect refused: ${hop.url.href} → ${location}`);
        if (redirects >= maxRedirects) throw new TooManyRedirectsError(maxRedirects);
        const next = new URL(location, hop.url);
        const headers = new Headers(hop.headers);
        if (next.origin !== hop.url.origin) for (const name of CROSS_ORIGIN_STRIP) headers.delete(name);
        // As fetch does: 303 always, and 301/302 after a POST, continue as a body-less GET.
        const asGet = status === 303 || ((status === 301 || status === 302) && hop.method === 'POST');
        if (asGet) {
          headers.delete('content-type');
          headers.delete('content-length');
        }
        hop = {
          url: next,
          method: asGet && hop.method !== 'HEAD' ? 'GET' : hop.method,
          headers,
          body: asGet ? undefined : hop.body,
        };
        continue;
      }
      const bytes = await readCapped(res);
      const responseHeaders = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) responseHeaders.append(name, v);
      }
      const nullBody = status === 204 || status === 205 || status === 304 || hop.method === 'HEAD';
      const response = new Response(nullBody ? null : new Uint8Array(bytes), {
        status: status < 200 || status > 599 ? 502 : status,
        statusText: res.statusMessage ?? '',
        headers: responseHeaders,
      });
      Object.defineProperty(response, 'url', { value: hop.url.href });
      Object.defineProperty(response, 'redirected', { value: redirects > 0 });
      return response;
    }
  };
}
