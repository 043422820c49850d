import { createHash } from 'node:crypto';
import { AppError, type Clock, systemClock } from '@agentstack/core';
import type { MiddlewareHandler } from 'hono';
import { getAddress, isAddress, verifyMessage } from 'viem';
import type { X402Store } from './store.js';

/**
 * Caller identity for free routes: an EIP-191 signature over method, path (with query), timestamp and a
 * hash of the body. Valid for five minutes either side of the server clock; each signature is accepted once.
 *
 *   X-Signer: 0x…   X-Timestamp: <unix seconds>   X-Signature: 0x…
 */
export const SIGNER_HEADER = 'x-signer';
export const TIMESTAMP_HEADER = 'x-timestamp';
export const SIGNATURE_HEADER = 'x-signature';
export const SIGNED_REQUEST_WINDOW_SECONDS = 300;

export function signedRequestMessage(method: string, pathWithQuery: string, timestamp: number, body: string): string {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return [
    'agentstack signed request',
    `method: ${method.toUpperCase()}`,
    `path: ${pathWithQuery}`,
    `timestamp: ${timestamp}`,
    `body-sha256: ${bodyHash}`,
  ].join('\n');
}

interface MessageSigner {
  address: `0x${string}`;
  signMessage(args: { message: string }): Promise<`0x${string}`>;
}

/** Headers that make a request signed by `account` (any viem local account). */
export async function signRequest(
  account: MessageSigner,
  request: { method: string; url: string; body?: string },
  now: Date = new Date(),
): Promise<Record<string, string>> {
  const url = new URL(request.url);
  const timestamp = Math.floor(now.getTime() / 1000);
  const message = signedRequestMessage(request.method, url.pathname + url.search, timestamp, request.body ?? '');
  return {
    [SIGNER_HEADER]: account.address,
    [TIMESTAMP_HEADER]: String(timestamp),
    [SIGNATURE_HEADER]: await account.signMessage({ message }),
  };
}

export type CallerVariables = { caller: `0x${string}` };

const unauthenticated = (message: string, field: string) => new AppError('unauthorized', message, 401, { field });

/** Requires a valid signed request and exposes the signer as `c.get('caller')`. */
export function signedRequest(options: {
  store: X402Store;
  clock?: Clock;
}): MiddlewareHandler<{ Variables: CallerVariables }> {
  const clock = options.clock ?? systemClock;
  return async (c, next) => {
    const signer = c.req.header(SIGNER_HEADER);
    const timestampText = c.req.header(TIMESTAMP_HEADER);
    const signature = c.req.header(SIGNATURE_HEADER);
    if (!signer || !timestampText || !signature) {
      throw unauthenticated(
        'this route needs a signed request (X-Signer, X-Timestamp, X-Signature; see llms.txt)',
        'header.x-signature',
      );
    }
    if (!isAddress(signer, { strict: false })) throw unauthenticated('X-Signer is not an address', 'header.x-signer');
    if (!/^\d{1,12}$/.test(timestampText)) {
      throw unauthenticated('X-Timestamp must be unix seconds', 'header.x-timestamp');
    }
    const timestamp = Number(timestampText);
    const skew = Math.abs(clock.now().getTime() / 1000 - timestamp);
    if (skew > SIGNED_REQUEST_WINDOW_SECONDS) {
      throw unauthenticated('signed request expired or from the future (5 minute window)', 'header.x-timestamp');
    }
    if (!/^0x[0-9a-fA-F]{130}$/.test(signature)) {
      throw unauthenticated('X-Signature must be a 65-byte hex signature', 'header.x-signature');
    }
    const url = new URL(c.req.url);
    const body = ['GET', 'HEAD'].includes(c.req.method) ? '' : await c.req.text();
    const message = signedRequestMessage(c.req.method, url.pathname + url.search, timestamp, body);
    const valid = await verifyMessage({
      address: getAddress(signer),
      message,
      signature: signature as `0x${string}`,
    }).catch(() => false);
    if (!valid) throw unauthenticated('signature does not match the request and signer', 'header.x-signature');
    const hash = createHash('sha256').update(signature.toLowerCase()).digest('hex');
    const expires = new Date((timestamp + SIGNED_REQUEST_WINDOW_SECONDS) * 1000);
    if (!(await options.store.claimSignature(hash, expires))) {
      throw unauthenticated('this signed request was already used', 'header.x-signature');
    }
    c.set('caller', getAddress(signer));
    await next();
  };
}
