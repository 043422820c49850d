import { rename, unlink } from 'node:fs/promises';
import net from 'node:net';
import { listenRelay } from '@agentstack/core';

/**
 * Getting connections into a sandbox that has no network: the host creates a listening unix socket in a
 * directory only root can enter, and passes the listening fd into the sandbox (an inherited fd: the
 * sandbox can accept on it, never re-point it). The host side connects to the socket by path; a TCP
 * forwarder maps `127.0.0.1:PORT` to it when a port is wanted. Never the other way round: a host TCP socket
 * handed into a sandbox can be disconnected and reconnected to a host service.
 */

export interface ListeningSocket {
  /** The fd to hand to the sandbox's launcher. */
  fd: number;
  /** Closes the host's copy (the sandbox keeps its own); the socket file stays for the host side to connect. */
  release(): Promise<void>;
}

/** Listens on `path` (replacing a stale socket there). */
export async function createListeningSocket(path: string): Promise<ListeningSocket> {
  await unlink(path).catch(() => {});
  // libuv unlinks a pipe's path when its server closes; listening on a temporary name and renaming it
  // keeps the real path alive after the host lets go of its copy.
  const temporary = `${path}.${process.pid}.tmp`;
  await unlink(temporary).catch(() => {});
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: temporary, backlog: 128 }, () => resolve());
  });
  await rename(temporary, path);
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    server.close();
    throw new Error('could not get the listening socket fd');
  }
  return {
    fd,
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface TcpForwarder {
  port: number;
  close(): Promise<void>;
}

/** Accepts on `127.0.0.1:port` (0: any free port) and pipes each connection to the unix socket at `path`. */
export async function startTcpForwarder(port: number, path: string, host = '127.0.0.1'): Promise<TcpForwarder> {
  const relay = await listenRelay({ port, host }, () => net.connect({ path, allowHalfOpen: true }));
  const address = relay.server.address();
  if (!address || typeof address === 'string') throw new Error('forwarder has no port');
  return { port: address.port, close: relay.close };
}
