import { isIP } from 'node:net';
import { isPublicAddress } from '@agentstack/core';

/**
 * Checks a webhook URL's shape when it is registered. Webhook URLs are chosen by callers, so posting to them
 * must not become a way into our own network: the addresses a host name resolves to are checked again on
 * every delivery, at connection time (`createWebhookFetch` of `@agentstack/webhooks`), unless private targets
 * are explicitly allowed (local development).
 */
export function webhookUrlProblem(raw: string, allowPrivate: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be http or https';
  if (url.username || url.password) return 'must not contain credentials';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate) {
    if (isIP(host) && !isPublicAddress(host)) return 'must not point at a private, loopback or reserved address';
    if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host.endsWith('.local')) {
      return 'must be a public host name';
    }
  }
  return undefined;
}
