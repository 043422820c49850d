import type { IncomingMessage } from 'node:http';

export function trustedProxies(list: string | undefined): Set<string>;
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trusted: Set<string>): string;
export function setForwardedHeaders(req: IncomingMessage, trusted: Set<string>): void;
