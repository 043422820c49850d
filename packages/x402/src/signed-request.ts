import { createHash, randomBytes } from 'node:crypto';
import { AppError, type Clock, systemClock } from '@agentstack/core';
import type { MiddlewareHandler } from 'hono';
import { getAddress, isAddress, verifyMessage } from 'viem';
import type { X402Store } from './store.js';

/**
 * Caller identity for free routes: an EIP-191 signature over method, path (with query), timestamp and a
 * hash of the body. Valid for five minutes either side of the server clock; each signature is accepted once.
 *
 *   X-Signer: 0x…   X-Timestamp: <unix seconds>   X-Nonce: <random>   X-Signature: 0x…
 *
 * The nonce makes two identical requests in the same second sign differently (ECDSA signatures are
 * deterministic), so an agent polling quickly is not mistaken for a replay.
 */
export const SIGNER_HEADER = 'x-signer';
export const TIMESTAMP_HEADER = 'x-timestamp';
export const SIGNATURE_HEADER = 'x-signature';
export const NONCE_HEADER = 'x-nonce';
export const SIGNED_REQUEST_WINDOW_SECONDS = 300;

export function signedRequestMessage(
  method: string,
  pathWithQuery: string,
  timestamp: number,
  nonce: string,
  body: string,
): string {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return [
    'agentstack signed request',
    `method: ${method.toUpperCase()}`,
    `path: ${pathWithQuery}`,
    `timestamp: ${timestamp}`,
    `nonce: ${nonce}`,
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
  const nonce = randomBytes(12).toString('base64url');
  const message = signedRequestMessage(request.method, url.pathname + url.search, timestamp, nonce, request.body ?? '');
  return {
    [SIGNER_HEADER]: account.address,
    [TIMESTAMP_HEADER]: String(timestamp),
    [NONCE_HEADER]: nonce,
    [SIGNATURE_HEADER]: await account.signMessage({ message }),
  };
}

/** How to sign, for services' llms.txt (one text, so every service documents the same rule). */
export const SIGNED_REQUEST_GUIDE = `Sign the request with your wallet (EIP-191 personal_sign) over these lines joined by "\\n":
\`agentstack signed request\`, \`method: <METHOD>\`, \`path: <path with query string>\`, \`timestamp: <unix seconds>\`,
\`nonce: <8-64 random URL-safe characters>\`, \`body-sha256: <hex sha256 of the body; of the empty string for GET>\`.
Send X-Signer (your address), X-Timestamp, X-Nonce and X-Signature. Valid for 5 minutes either side of the
server clock, and once: sign every request afresh with a new nonce. \`signRequest()\` in @agentstack/x402 does this.`;

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
    const nonce = c.req.header(NONCE_HEADER);
    if (!signer || !timestampText || !signature || !nonce) {
      throw unauthenticated(
        'this route needs a signed request (X-Signer, X-Timestamp, X-Nonce, X-Signature; see llms.txt)',
        'header.x-signature',
      );
    }
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(nonce)) {
      throw unauthenticated('X-Nonce must be 8-64 URL-safe characters', 'header.x-nonce');
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
    const message = signedRequestMessage(c.req.method, url.pathname + url.search, timestamp, nonce, body);
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
