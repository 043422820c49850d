import { connect } from 'node:net';
import { listenRelay, type SocketRelay } from '@agentstack/core';
import { z } from 'zod';

/**
 * A tenant runtime has no network of its own: the platform hands it unix sockets (LLM proxy, platform API,
 * egress proxy). Bridges make each one reachable as a loopback TCP port inside the tenant's own network
 * namespace, so every program there — the runtime, `curl`, `pip`, `git` through `HTTP_PROXY` — speaks
 * plain TCP and never learns where the socket leads.
 */
export interface Bridge {
  host: string;
  port: number;
  socketPath: string;
}

const bridgeEntry = z
  .string()
  .trim()
  .regex(/^(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}=\/\S+$/, 'expected 127.0.0.1:PORT=/absolute/socket/path')
  .transform((entry, ctx): Bridge => {
    const eq = entry.indexOf('=');
    const address = entry.slice(0, eq);
    const colon = address.lastIndexOf(':');
    const port = Number(address.slice(colon + 1));
    if (port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `port out of range in ${entry}` });
      return z.NEVER;
    }
    return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port, socketPath: entry.slice(eq + 1) };
  });

/** `RUNTIME_BRIDGES`: comma-separated `127.0.0.1:PORT=/path/to.sock` (loopback only: nothing else exists). */
export const bridgesSchema = z
  .string()
  .optional()
  .transform((text) => (text ? text.split(',').filter((part) => part.trim() !== '') : []))
  .pipe(z.array(bridgeEntry));

export interface RunningBridges {
  close(): Promise<void>;
}

/** Listens on every bridge's loopback port and pipes each connection to its socket. */
export async function startBridges(bridges: Bridge[]): Promise<RunningBridges> {
  const relays: SocketRelay[] = [];
  const closeAll = () => Promise.all(relays.map((relay) => relay.close())).then(() => undefined);
  try {
    for (const bridge of bridges) {
      relays.push(
        await listenRelay({ port: bridge.port, host: bridge.host }, () =>
          connect({ path: bridge.socketPath, allowHalfOpen: true }),
        ).catch((err: Error) => {
          throw new Error(`RUNTIME_BRIDGES: cannot listen on ${bridge.host}:${bridge.port}: ${err.message}`);
        }),
      );
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return { close: closeAll };
}
