import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isPublicAddress } from '@agentstack/core';
import { createWebhookFetch, sendWebhook, signPayload, verifySignature, type WebhookFetch } from '@agentstack/webhooks';

/**
 * spawn's warning webhooks (low balance, auto-destroy scheduled, auto-destroyed), behind a small interface:
 * `WebhookSender.send` makes one signed attempt (through `@agentstack/webhooks`); the outbox in `sweeper.ts`
 * stores deliveries and retries them with backoff.
 *
 * Signature: `X-Spawn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, the scheme
 * of `@agentstack/webhooks` under spawn's own header names.
 * Receivers recompute it over the raw body and reject timestamps older than a few minutes.
 */
export interface WebhookEvent {
  id: string;
  type: 'server.low_balance' | 'server.auto_destroy_scheduled' | 'server.auto_destroyed';
  created_at: string;
  data: Record<string, unknown>;
}

export interface WebhookTarget {
  url: string;
  secret: string;
}

export interface WebhookAttempt {
  ok: boolean;
  status?: number;
  error?: string;
}

export interface WebhookSender {
  send(target: WebhookTarget, event: WebhookEvent): Promise<WebhookAttempt>;
}

export const SIGNATURE_HEADER = 'x-spawn-signature';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return signPayload({ secret, body, timestamp });
}

/** For receivers (and tests): checks the signature over the raw body and the timestamp's age. */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string,
  { toleranceSeconds = 300, now = Date.now() }: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  return verifySignature({ secret, header, body, toleranceSeconds, now: new Date(now) }).ok;
}

export const newWebhookEventId = () => `evt_${randomBytes(12).toString('hex')}`;

/** Refuses URLs that are not http(s) or that resolve to a non-public address (unless allowed, for local use). */
export async function checkWebhookUrl(url: string, allowPrivate: boolean): Promise<string | undefined> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be http or https';
  if (parsed.username || parsed.password) return 'must not contain credentials';
  if (allowPrivate) return undefined;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) return `cannot resolve ${host}`;
  if (!addresses.every(isPublicAddress)) return 'must resolve to a public address';
  return undefined;
}

/** One HTTP POST per attempt, 10 s at most; 2xx is delivered, anything else is retried by the outbox. */
export class HttpWebhookSender implements WebhookSender {
  private readonly fetch: WebhookFetch;
  private readonly timeoutMs: number;

  constructor(
    private readonly options: { allowPrivate: boolean; timeoutMs?: number; fetch?: typeof globalThis.fetch } = {
      allowPrivate: false,
    },
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetch = options.fetch ?? createWebhookFetch({ timeoutMs: this.timeoutMs, allowPrivate: options.allowPrivate });
  }

  async send(target: WebhookTarget, event: WebhookEvent): Promise<WebhookAttempt> {
    // Refused up front with spawn's own wording; the default fetch checks the address it connects to again.
    const refused = await checkWebhookUrl(target.url, this.options.allowPrivate);
    if (refused) return { ok: false, error: `url ${refused}` };
    const { statusCode, error } = await sendWebhook({
      url: target.url,
      secret: target.secret,
      body: JSON.stringify(event),
      id: event.id,
      event: event.type,
      fetch: this.fetch,
      timeoutMs: this.timeoutMs,
      headers: { signature: SIGNATURE_HEADER, id: 'x-spawn-delivery', event: 'x-spawn-event' },
      userAgent: 'spawn.sh-webhooks/1',
      errorBodyChars: 0,
    });
    if (error === null) return { ok: true, status: statusCode ?? 200 };
    return statusCode === null ? { ok: false, error } : { ok: false, status: statusCode, error };
  }
}
