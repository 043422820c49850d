import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { removeStaleSocket } from '@agentstack/core';
import {
  type AllowList,
  checkDestination,
  type DestinationCheck,
  parseAllowList,
  parseDenyList,
  type Resolver,
} from './check.js';

interface LogLike {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface EgressLimits {
  /** Bytes per connection, both directions together. Default 1 GiB. */
  maxBytes?: number;
  /** Wall-clock life of one connection. Default 10 minutes. */
  maxDurationMs?: number;
  /** A connection with no traffic either way for this long is closed. Default 60 s. */
  idleTimeoutMs?: number;
  /** Time to establish the upstream TCP connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Simultaneous client connections; more are refused with 503. Default 256. */
  maxConnections?: number;
}

export interface EgressProxyOptions {
  /** Non-public destinations that may be reached anyway (see `parseAllowList`). */
  allow?: readonly string[] | AllowList;
  /** Addresses never reached, even when public or allow-listed (e.g. the host's own; see `parseDenyList`). */
  deny?: readonly string[];
  /** Destination ports that may be reached; default: any. */
  ports?: readonly number[];
  resolve?: Resolver;
  limits?: EgressLimits;
  /** Structured log: one `warn` line per refusal, one `info` line per finished connection. */
  log?: LogLike;
}

export type ListenTarget = { port: number; host?: string } | { path: string };

export interface EgressProxy {
  readonly server: Server;
  /** Starts listening; resolves with the proxy URL (`http://127.0.0.1:PORT`) or the socket path. */
  listen(target: ListenTarget): Promise<{ url?: string; path?: string; port?: number }>;
  close(): Promise<void>;
  /** Connections currently open. */
  connections(): number;
}

const DEFAULTS: Required<EgressLimits> = {
  maxBytes: 1024 * 1024 * 1024,
  maxDurationMs: 10 * 60_000,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  maxConnections: 256,
};

// Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy's own; never forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * An HTTP forward proxy that lets traffic reach public internet addresses only. It resolves every
 * destination itself, refuses anything that is not globally routable unless allow-listed, and connects to
 * the exact address it checked. `CONNECT host:port` carries HTTPS (and anything else over TLS);
 * absolute-URI requests (`GET http://host/path`) carry plain HTTP.
 */
export function createEgressProxy(options: EgressProxyOptions = {}): EgressProxy {
  const limits = { ...DEFAULTS, ...options.limits };
  const allow = Array.isArray(options.allow) ? parseAllowList(options.allow) : (options.allow as AllowList | undefined);
  const deny = options.deny && options.deny.length > 0 ? parseDenyList(options.deny) : undefined;
  const ports = options.ports ? new Set(options.ports) : undefined;
  const log = options.log;
  const open = new Set<Duplex>();

  const check = async (host: string, port: number): Promise<DestinationCheck> => {
    const result = await checkDestination(
      { host, port },
      {
        ...(options.resolve ? { resolve: options.resolve } : {}),
        ...(allow ? { allow } : {}),
        ...(deny ? { deny } : {}),
      },
    );
    if (result.allowed && ports && !ports.has(port)) {
      return {
        allowed: false,
        host: result.host,
        port,
        reason: 'invalid_destination',
        message: `port ${port} is not allowed`,
      };
    }
    return result;
  };

  /** More client connections than allowed are open (this one included): turn the newest away. */
  const overLimit = () => {
    if (open.size <= limits.maxConnections) return false;
    log?.warn({ event: 'egress_limit', limit: 'connections', open: open.size }, 'egress proxy at its connection limit');
    return true;
  };

  const refused = (result: Extract<DestinationCheck, { allowed: false }>, method: string) => {
    log?.warn(
      {
        event: 'egress_refused',
        method,
        host: result.host,
        port: result.port,
        reason: result.reason,
        ...(result.address ? { address: result.address, kind: result.kind } : {}),
      },
      'egress refused',
    );
    const status = result.reason === 'unresolvable' ? 502 : 403;
    return { status, body: errorBody(status, `egress_${result.reason}`, result.message), reason: result.reason };
  };

  /**
   * Applies the byte, idle and lifetime limits to one proxied exchange: `count` a stream's bytes, `idle`
   * a socket's silence; when a limit trips every `destroy` stream is closed. Logs one line when it ends.
   */
  const guard = (destroy: Closable[], info: Record<string, unknown>) => {
    const started = Date.now();
    let bytes = 0;
    let ended: string | undefined;
    let logged = false;
    const stop = (why: string) => {
      if (ended) return;
      ended = why;
      if (why !== 'closed')
        log?.warn({ event: 'egress_limit', limit: why, bytes, ...info }, `egress connection closed: ${why}`);
      for (const d of destroy) d.destroy();
    };
    const lifetime = setTimeout(() => stop('max_duration'), limits.maxDurationMs);
    lifetime.unref();
    const finish = () => {
      clearTimeout(lifetime);
      if (logged) return;
      logged = true;
      stop('closed');
      log?.info(
        { event: 'egress_closed', bytes, ms: Date.now() - started, end: ended, ...info },
        'egress connection closed',
      );
    };
    for (const d of destroy) d.once('close', finish);
    return {
      count(stream: NodeJS.ReadableStream) {
        stream.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > limits.maxBytes) stop('max_bytes');
        });
      },
      idle(socket: Socket) {
        socket.setTimeout(limits.idleTimeoutMs, () => stop('idle'));
      },
    };
  };

  const onConnect = async (req: IncomingMessage, client: Socket, head: Buffer) => {
    client.on('error', () => client.destroy());
    const target = parseAuthority(req.url ?? '');
    const reply = (status: number, text: string, headers: Record<string, string>, body: string) => {
      const lines = [`HTTP/1.1 ${status} ${text}`, 'Connection: close', `Content-Length: ${Buffer.byteLength(body)}`];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      client.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
    };
    if (overLimit()) return reply(503, 'Service Unavailable', JSON_TYPE, BUSY_BODY);
    if (!target) {
      return reply(400, 'Bad Request', JSON_TYPE, errorBody(400, 'egress_bad_request', 'CONNECT needs host:port'));
    }
    const result = await check(target.host, target.port);
    if (client.destroyed) return;
    if (!result.allowed) {
      const r = refused(result, 'CONNECT');
      return reply(
        r.status,
        r.status === 403 ? 'Forbidden' : 'Bad Gateway',
        { ...JSON_TYPE, 'X-Egress-Refused': r.reason },
        r.body,
      );
    }
    const upstream = connect({ host: result.address, port: result.port, family: result.family });
    let established = false;
    const connectTimer = setTimeout(() => upstream.destroy(new Error('connect timed out')), limits.connectTimeoutMs);
    upstream.on('error', (err) => {
      clearTimeout(connectTimer);
      if (established) return client.destroy();
      const message = `could not connect to ${result.host}:${result.port}: ${err.message}`;
      reply(502, 'Bad Gateway', JSON_TYPE, errorBody(502, 'egress_upstream_failed', message));
    });
    client.once('close', () => upstream.destroy());
    upstream.once('connect', () => {
      clearTimeout(connectTimer);
      established = true;
      const g = guard([client, upstream], {
        method: 'CONNECT',
        host: result.host,
        port: result.port,
        address: result.address,
      });
      g.count(client);
      g.count(upstream);
      g.idle(client);
      g.idle(upstream);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const fail = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(status, { ...JSON_TYPE, Connection: 'close', ...headers });
      res.end(errorBody(status, code, message));
    };
    if (overLimit()) {
      res.writeHead(503, { ...JSON_TYPE, Connection: 'close' });
      return void res.end(BUSY_BODY);
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      return fail(
        400,
        'egress_bad_request',
        'this is a forward proxy: send absolute http:// URLs, or CONNECT for https',
      );
    }
    if (url.protocol !== 'http:') {
      return fail(
        400,
        'egress_bad_request',
        `only http:// URLs are forwarded as plain requests; use CONNECT for ${url.protocol}`,
      );
    }
    const port = url.port ? Number(url.port) : 80;
    const result = await check(url.hostname, port);
    if (!result.allowed) {
      const r = refused(result, req.method ?? 'GET');
      return fail(r.status, `egress_${r.reason}`, result.message, { 'X-Egress-Refused': r.reason });
    }
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    }
    headers.host = url.host;
    headers.connection = 'close';
    const upstream = request({
      host: result.address,
      family: result.family,
      port,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers,
      agent: false,
      setHost: false,
    });
    const g = guard([req.socket, upstream], { method: req.method, host: result.host, port, address: result.address });
    g.count(req);
    const connectTimer = setTimeout(() => upstream.destroy(new Error('connect timed out')), limits.connectTimeoutMs);
    upstream.on('socket', (socket) => {
      g.idle(socket);
      socket.once('connect', () => clearTimeout(connectTimer));
    });
    upstream.on('error', (err) => {
      clearTimeout(connectTimer);
      fail(502, 'egress_upstream_failed', `could not reach ${url.host}: ${err.message}`);
    });
    upstream.once('response', (upstreamRes) => {
      g.count(upstreamRes);
      const out: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(upstreamRes.headers)) {
        if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      }
      out.connection = 'close';
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, out);
      upstreamRes.pipe(res);
    });
    req.pipe(upstream);
  };

  const server = createServer();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  server.on('connect', (req, socket, head) => void onConnect(req, socket as Socket, head));
  server.on('request', (req, res) => void onRequest(req, res));
  server.on('upgrade', (_req, socket: Duplex) => {
    const body = errorBody(400, 'egress_bad_request', 'use CONNECT for upgraded connections');
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  return {
    server,
    connections: () => open.size,
    listen(target) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        const done = () => {
          server.off('error', reject);
          const address = server.address();
          if ('path' in target) return resolve({ path: target.path });
          const port = typeof address === 'object' && address ? address.port : target.port;
          const host = target.host ?? '127.0.0.1';
          resolve({ url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, port });
        };
        if ('path' in target) {
          removeStaleSocket(target.path);
          server.listen(target.path, done);
        } else {
          server.listen(target.port, target.host ?? '127.0.0.1', done);
        }
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of open) socket.destroy();
      });
    },
  };
}

/** Anything the guard may close: sockets, client requests. */
interface Closable {
  destroy(): unknown;
  once(event: 'close', listener: () => void): unknown;
}

const JSON_TYPE = { 'Content-Type': 'application/json' };
const BUSY_BODY = JSON.stringify({
  error: { code: 'egress_busy', message: 'too many open connections through the egress proxy', status: 503 },
});

function errorBody(status: number, code: string, message: string): string {
  return JSON.stringify({ error: { code, message, status } });
}

/** Parses a CONNECT authority (`host:port`, `[v6]:port`). */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const m = /^\[([0-9a-f:.]+)\]:(\d{1,5})$/i.exec(authority) ?? /^([^:[\]/@\s]+):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  return { host: m[1]!, port: Number(m[2]) };
}
