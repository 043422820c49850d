import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { isPublicAddress } from './address.js';

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
  /**
   * Every host may be reached, private addresses included (local development only: a stack whose webhook
   * receivers run on localhost). Default false.
   */
  allowPrivateAddresses?: boolean;
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
  options: Pick<SafeFetchOptions, 'allowHosts' | 'allowPrivateAddresses' | 'resolve'> = {},
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
    const allowed = options.allowPrivateAddresses === true || allow.has(host) || allow.has(url.host.toLowerCase());
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
