import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
 *
 * The timestamp is inside the signed bytes, so a captured delivery cannot be replayed outside the tolerance
 * window; inside it, receivers drop repeats by `X-Webhook-Id`. Several `v1=` entries may appear (a secret
 * being rotated): any one matching is enough.
 */
export const SIGNATURE_HEADER = 'x-signature';
export const WEBHOOK_ID_HEADER = 'x-webhook-id';
export const WEBHOOK_EVENT_HEADER = 'x-webhook-event';
export const DEFAULT_TOLERANCE_SECONDS = 300;

const hmac = (secret: string, timestamp: number, body: string) =>
  createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');

/** The `X-Signature` value for `body` (the exact bytes sent) at `timestamp` (unix seconds). */
export function signPayload({
  secret,
  body,
  timestamp = Math.floor(Date.now() / 1000),
}: {
  secret: string;
  body: string;
  timestamp?: number;
}): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body)}`;
}

export type VerifyResult =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'malformed' | 'expired' | 'from_the_future' | 'mismatch' };

/** Checks an `X-Signature` against the raw request body (never a re-serialised JSON object). */
export function verifySignature({
  secret,
  header,
  body,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
  now = new Date(),
}: {
  secret: string | string[];
  header: string | null | undefined;
  body: string;
  toleranceSeconds?: number;
  now?: Date;
}): VerifyResult {
  if (!header) return { ok: false, reason: 'malformed' };
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && value && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && value && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === undefined || signatures.length === 0) return { ok: false, reason: 'malformed' };
  const age = Math.floor(now.getTime() / 1000) - timestamp;
  if (age > toleranceSeconds) return { ok: false, reason: 'expired' };
  if (age < -toleranceSeconds) return { ok: false, reason: 'from_the_future' };
  const secrets = Array.isArray(secret) ? secret : [secret];
  for (const s of secrets) {
    const expected = Buffer.from(hmac(s, timestamp, body), 'hex');
    for (const candidate of signatures) {
      if (timingSafeEqual(expected, Buffer.from(candidate, 'hex'))) return { ok: true, timestamp };
    }
  }
  return { ok: false, reason: 'mismatch' };
}
