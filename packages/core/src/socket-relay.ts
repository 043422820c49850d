import { createServer, type Server, type Socket } from 'node:net';

export interface SocketRelay {
  server: Server;
  /** Stops listening and cuts the connections in flight. */
  close(): Promise<void>;
}

/**
 * Listens (TCP or a unix socket) and joins every accepted connection to a fresh one from `dial`, bytes
 * both ways. Half-open both ways (a client may finish sending and still read the reply; `dial` should
 * connect with `allowHalfOpen: true`); an error or a full close on either side ends both.
 */
export function listenRelay(
  at: { port: number; host: string } | { path: string },
  dial: () => Socket,
): Promise<SocketRelay> {
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = dial();
    open.add(client).add(upstream);
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
  const close = () =>
    new Promise<void>((resolve) => {
      for (const socket of open) socket.destroy();
      server.close(() => resolve());
    });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = () => {
      server.off('error', reject);
      resolve({ server, close });
    };
    if ('path' in at) server.listen(at.path, ready);
    else server.listen(at.port, at.host, ready);
  });
}
