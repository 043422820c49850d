import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * spawn's warning webhooks (low balance, auto-destroy scheduled, auto-destroyed), behind a small interface
 * so a shared delivery package can replace the sender without touching the rest: `WebhookSender.send`
 * makes one signed attempt; the outbox in `sweeper.ts` stores deliveries and retries them with backoff.
 *
 * Signature: `X-Spawn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
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
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** For receivers (and tests): checks the signature over the raw body and the timestamp's age. */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string,
  { toleranceSeconds = 300, now = Date.now() }: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  if (!header) return false;
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const timestamp = Number(parts.t);
  if (!Number.isInteger(timestamp) || Math.abs(now / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body).split('v1=')[1] ?? '', 'hex');
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export const newWebhookEventId = () => `evt_${randomBytes(12).toString('hex')}`;

/** Loopback, private, link-local, CGNAT, multicast and reserved ranges: never a webhook target in production. */
export function isPrivateAddress(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a = 0, b = 0] = ip.split('.').map(Number);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 198 && (b === 18 || b === 19)) ||
      a >= 224
    );
  }
  const lower = ip.toLowerCase();
  if (lower === '::' || lower === '::1') return true;
  if (lower.startsWith('::ffff:')) return isPrivateAddress(lower.slice(7));
  return /^(fc|fd|fe8|fe9|fea|feb|ff)/.test(lower);
}

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
  if (addresses.some(isPrivateAddress)) return 'must resolve to a public address';
  return undefined;
}

/** One HTTP POST per attempt, 10 s at most; 2xx is delivered, anything else is retried by the outbox. */
export class HttpWebhookSender implements WebhookSender {
  constructor(
    private readonly options: { allowPrivate: boolean; timeoutMs?: number; fetch?: typeof globalThis.fetch } = {
      allowPrivate: false,
    },
  ) {}

  async send(target: WebhookTarget, event: WebhookEvent): Promise<WebhookAttempt> {
    const refused = await checkWebhookUrl(target.url, this.options.allowPrivate);
    if (refused) return { ok: false, error: `url ${refused}` };
    const body = JSON.stringify(event);
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const response = await (this.options.fetch ?? fetch)(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'spawn.sh-webhooks/1',
          'x-spawn-event': event.type,
          'x-spawn-delivery': event.id,
          [SIGNATURE_HEADER]: signWebhook(target.secret, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
      await response.body?.cancel();
      return response.ok
        ? { ok: true, status: response.status }
        : { ok: false, status: response.status, error: `HTTP ${response.status}` };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }
}
