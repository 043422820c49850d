import { isIP } from 'node:net';
import { type AllowList, checkDestination, type Resolver } from '@agentstack/egress';
import { Agent, buildConnector, type Dispatcher, EnvHttpProxyAgent } from 'undici';

/** Raised when a destination is refused before any connection is made (direct mode). */
export class EgressRefusedError extends Error {
  override name = 'EgressRefusedError';
}

export interface OutboundOptions {
  httpProxy?: string | undefined;
  httpsProxy?: string | undefined;
  noProxy?: string | undefined;
  /** Direct mode only: resolver and allow-list for the public-address check (tests). */
  resolve?: Resolver;
  allow?: AllowList;
}

/**
 * The dispatcher tools use for web requests. With `HTTP_PROXY`/`HTTPS_PROXY` set, every request goes through
 * that proxy (the egress proxy in production; `NO_PROXY` hosts go direct). Without a proxy the runtime applies
 * the same rule itself: resolve, refuse non-public addresses, connect to the exact address checked.
 */
export function createOutboundDispatcher(options: OutboundOptions = {}): Dispatcher {
  if (options.httpProxy || options.httpsProxy) {
    return new EnvHttpProxyAgent({
      httpProxy: options.httpProxy ?? options.httpsProxy,
      httpsProxy: options.httpsProxy ?? options.httpProxy,
      noProxy: options.noProxy ?? '',
    });
  }
  const base = buildConnector({ timeout: 10_000 });
  const connect: buildConnector.connector = (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
    checkDestination(
      { host: opts.hostname, port },
      { ...(options.resolve ? { resolve: options.resolve } : {}), ...(options.allow ? { allow: options.allow } : {}) },
    ).then(
      (result) => {
        if (!result.allowed) return callback(new EgressRefusedError(result.message), null);
        const hostname = opts.hostname.replace(/^\[|\]$/g, '');
        // Connect to the checked address; TLS still verifies the name that was asked for.
        const servername = opts.servername ?? (isIP(hostname) ? undefined : hostname);
        base({ ...opts, hostname: result.address, ...(servername ? { servername } : {}) }, callback);
      },
      (err: Error) => callback(err, null),
    );
  };
  return new Agent({ connect });
}

/** A dispatcher that reaches one unix socket whatever the URL says (the LLM proxy handed into a sandbox). */
export function unixSocketDispatcher(socketPath: string): Dispatcher {
  return new Agent({ connect: { socketPath } });
}
