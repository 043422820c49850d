import { signPayload, verifySignature } from '@agentstack/webhooks';

/**
 * Webhook signatures: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, the
 * scheme of `@agentstack/webhooks`. The timestamp is inside the signed bytes, so a receiver that rejects old
 * timestamps (default: older than five minutes) rejects replays; each retry is signed afresh with the time it
 * is sent.
 */
export { DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER } from '@agentstack/webhooks';

export function signWebhook(secret: string, body: string, timestamp: number = Math.floor(Date.now() / 1000)): string {
  return signPayload({ secret, body, timestamp });
}

export type VerifyResult =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'malformed' | 'expired' | 'mismatch' };

/**
 * What a receiver runs on the raw request body. Accepts any of several `v1=` values (e.g. during a secret
 * rotation a sender may include two). A timestamp too far from now either way is `expired`.
 */
export function verifyWebhook(
  secret: string,
  header: string | null | undefined,
  body: string,
  { toleranceSeconds, now = Date.now() }: { toleranceSeconds?: number; now?: number } = {},
): VerifyResult {
  const result = verifySignature({
    secret,
    header,
    body,
    now: new Date(now),
    ...(toleranceSeconds !== undefined && { toleranceSeconds }),
  });
  if (result.ok) return result;
  return { ok: false, reason: result.reason === 'from_the_future' ? 'expired' : result.reason };
}
