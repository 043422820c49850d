import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer, serve } from '@hono/node-server';
import type { Logger } from './logger.js';

export interface RunningServer {
  /** `http://host:port`, or `unix:<path>` for a unix socket. */
  url: string;
  /** The TCP port; 0 on a unix socket. */
  port: number;
  /** The unix socket path, when listening on one. */
  path?: string;
  server: Server;
  close(): Promise<void>;
}

type FetchApp = { fetch: (request: Request) => Response | Promise<Response> };

/**
 * Serves a fetch handler (a Hono app) on `hostname:port` (port 0: any free port) or on a unix socket
 * `path` (a stale socket left by an earlier run is replaced; any other file there is an error).
 */
export function listenOn(
  app: FetchApp,
  options: { port: number; hostname?: string } | { path: string },
): Promise<RunningServer> {
  if ('path' in options) return listenOnSocket(app, options.path);
  const { port, hostname = '127.0.0.1' } = options;
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, (info: AddressInfo) => {
      const host = hostname === '0.0.0.0' || hostname === '::' ? '127.0.0.1' : hostname;
      resolve({
        url: `http://${host}:${info.port}`,
        port: info.port,
        server: server as Server,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as Server).closeAllConnections?.();
          }),
      });
    }) as Server;
    server.once('error', reject);
  });
}

/** A unix socket left by a process that died blocks `listen`; remove it, but never anything that is not a socket. */
export function removeStaleSocket(path: string): void {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
  unlinkSync(path);
}

function listenOnSocket(app: FetchApp, path: string): Promise<RunningServer> {
  try {
    removeStaleSocket(path);
  } catch (err) {
    return Promise.reject(err);
  }
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve({
        url: `unix:${path}`,
        port: 0,
        path,
        server,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections?.();
          }),
      });
    });
  });
}

/**
 * The tail of every service's `main.ts`: listen, log where, and on SIGINT/SIGTERM stop accepting, run the
 * service's own cleanup (pools, sweepers) and exit. A second signal exits at once.
 */
export async function runUntilSignal(options: {
  app: { fetch: (request: Request) => Response | Promise<Response> };
  port: number;
  hostname?: string;
  /** Listen on this unix socket instead of `hostname:port`. */
  socketPath?: string;
  log: Logger;
  name: string;
  onShutdown?: () => Promise<void>;
}): Promise<RunningServer> {
  const running = await listenOn(
    options.app,
    options.socketPath
      ? { path: options.socketPath }
      : { port: options.port, hostname: options.hostname ?? '127.0.0.1' },
  );
  options.log.info({ url: running.url }, `${options.name} listening`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    options.log.info({ signal }, `${options.name} stopping`);
    const timer = setTimeout(() => process.exit(1), 10_000).unref();
    try {
      await running.close();
      await options.onShutdown?.();
    } finally {
      clearTimeout(timer);
      process.exit(0);
    }
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  return running;
}
