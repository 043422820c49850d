import { createSafeFetch } from '@agentstack/core';
import { SIGNATURE_HEADER, signPayload, WEBHOOK_EVENT_HEADER, WEBHOOK_ID_HEADER } from './signature.js';

/**
 * One signed delivery attempt and what surrounds it (the fetch it goes through, the retry schedule), shared
 * by every service that sends webhooks. Services differ only in header names, user agent, limits and where
 * they keep deliveries; the signature scheme (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`) is
 * the same everywhere.
 */
export type WebhookFetch = (input: string, init: RequestInit) => Promise<Response>;

/** The names of the three headers a delivery carries besides content type and user agent. */
export interface WebhookHeaderNames {
  /** The `t=…,v1=…` signature (default `x-signature`). */
  signature: string;
  /** The delivery id receivers deduplicate on (default `x-webhook-id`). */
  id: string;
  /** The event type (default `x-webhook-event`). */
  event: string;
}

export const DEFAULT_WEBHOOK_HEADERS: WebhookHeaderNames = {
  signature: SIGNATURE_HEADER,
  id: WEBHOOK_ID_HEADER,
  event: WEBHOOK_EVENT_HEADER,
};

export interface WebhookFetchOptions {
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  /** Local development only: skip the public-address check (default false). */
  allowPrivate?: boolean;
  /** Largest answer read (default 64 KiB). */
  maxResponseBytes?: number;
}

/**
 * The fetch webhooks go through: public addresses only (checked on the address actually connected to, so
 * DNS rebinding cannot slip through), no redirects followed, the answer capped.
 */
export function createWebhookFetch({
  timeoutMs = 10_000,
  allowPrivate = false,
  maxResponseBytes = 64 * 1024,
}: WebhookFetchOptions = {}): WebhookFetch {
  return createSafeFetch({ maxResponseBytes, timeoutMs, maxRedirects: 0, allowPrivateAddresses: allowPrivate });
}

export interface SendWebhookInput {
  url: string;
  secret: string;
  /** The exact bytes sent and signed. */
  body: string;
  /** Sent in the id header. */
  id: string;
  /** Sent in the event header. */
  event: string;
  fetch: WebhookFetch;
  timeoutMs: number;
  headers?: Partial<WebhookHeaderNames>;
  userAgent?: string;
  /** Unix seconds signed into the signature (default now). */
  timestamp?: number;
  /** How much of a non-2xx answer's body goes into the error (default 200; 0 leaves it out). */
  errorBodyChars?: number;
}

export interface SendWebhookResult {
  /** null when no answer came (network error, refusal, timeout). */
  statusCode: number | null;
  /** null when delivered (2xx); otherwise why not, at most 500 characters. */
  error: string | null;
}

/** One signed POST: 2xx is delivered, anything else (or no answer) is an error for the caller to retry. */
export async function sendWebhook(input: SendWebhookInput): Promise<SendWebhookResult> {
  const names = { ...DEFAULT_WEBHOOK_HEADERS, ...input.headers };
  const errorBodyChars = input.errorBodyChars ?? 200;
  try {
    const res = await input.fetch(input.url, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(input.timeoutMs),
      headers: {
        'content-type': 'application/json',
        'user-agent': input.userAgent ?? 'agentstack-webhooks/1',
        [names.signature]: signPayload({
          secret: input.secret,
          body: input.body,
          timestamp: input.timestamp ?? Math.floor(Date.now() / 1000),
        }),
        [names.id]: input.id,
        [names.event]: input.event,
      },
      body: input.body,
    });
    const text = await res.text().catch(() => '');
    if (res.status >= 200 && res.status < 300) return { statusCode: res.status, error: null };
    const excerpt = errorBodyChars > 0 ? text.slice(0, errorBodyChars) : '';
    return { statusCode: res.status, error: `HTTP ${res.status}${excerpt ? `: ${excerpt}` : ''}` };
  } catch (err) {
    return { statusCode: null, error: ((err as Error).message || String(err)).slice(0, 500) };
  }
}

export interface BackoffOptions {
  /** Delay before the second attempt; doubles per attempt. */
  baseMs: number;
  /** Longest delay between attempts. */
  maxMs: number;
  /** Random spread around the exact delay, as a fraction (default 0.2: ±20 %); 0 for a fixed schedule. */
  jitter?: number;
}

/**
 * Delay after `attempt` failed attempts: `base · 2^(attempt-1)`, capped, with jitter so a recovering receiver
 * is not hit by a thundering herd.
 */
export function backoffDelay(
  attempt: number,
  { baseMs, maxMs, jitter = 0.2 }: BackoffOptions,
  random = Math.random,
): number {
  const exact = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exact * (1 - jitter + 2 * jitter * random()));
}
