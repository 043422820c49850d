import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Logger } from './logger.js';

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Serves a fetch handler (a Hono app) on `hostname:port` (port 0: any free port). */
export function listenOn(
  app: { fetch: (request: Request) => Response | Promise<Response> },
  { port, hostname = '127.0.0.1' }: { port: number; hostname?: string },
): Promise<RunningServer> {
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

/**
 * The tail of every service's `main.ts`: listen, log where, and on SIGINT/SIGTERM stop accepting, run the
 * service's own cleanup (pools, sweepers) and exit. A second signal exits at once.
 */
export async function runUntilSignal(options: {
  app: { fetch: (request: Request) => Response | Promise<Response> };
  port: number;
  hostname?: string;
  log: Logger;
  name: string;
  onShutdown?: () => Promise<void>;
}): Promise<RunningServer> {
  const running = await listenOn(options.app, { port: options.port, hostname: options.hostname ?? '127.0.0.1' });
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
