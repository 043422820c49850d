import type { IncomingMessage } from 'node:http';

export interface Trusted {
  has(address: string): boolean;
}
export function trustedProxies(list: string | undefined): Trusted;
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trusted: Trusted): string;
export function setForwardedHeaders(req: IncomingMessage, trusted: Trusted): void;
