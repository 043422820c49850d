import { connect, createServer, type Server, type Socket } from 'node:net';
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
  const servers: Server[] = [];
  const open = new Set<Socket>();
  try {
    for (const bridge of bridges) servers.push(await listenBridge(bridge, open));
  } catch (err) {
    await closeAll(servers, open);
    throw err;
  }
  return { close: () => closeAll(servers, open) };
}

function listenBridge(bridge: Bridge, open: Set<Socket>): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(bridge.socketPath);
    open.add(client).add(upstream);
    // Either side ending or failing ends both: a half-open bridge would hang the caller.
    const end = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(new Error(`RUNTIME_BRIDGES: cannot listen on ${bridge.host}:${bridge.port}: ${err.message}`)),
    );
    server.listen(bridge.port, bridge.host, () => resolve(server));
  });
}

async function closeAll(servers: Server[], open: Set<Socket>): Promise<void> {
  for (const socket of open) socket.destroy();
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
        }),
    ),
  );
}
