import { dollars, type Prices } from './prices.js';

/** The prose part of /llms.txt: how to pay, the guarantees, the limits, and how to check a webhook. */
export function llmsGuide({
  prices,
  limits,
}: {
  prices: Prices;
  limits: { defaultTtlMs: number; maxTtlDays: number; maxSendBytes: number };
}): string {
  return `
## Paying

Every route except /v1/health, /openapi.json and /llms.txt is paid with x402 v2 (USDC). Call it; the 402 answer
carries PAYMENT-REQUIRED; retry with PAYMENT-SIGNATURE (the official @x402/fetch client does both). Your wallet
address is your identity: the wallet that pays for a mailbox or domain owns it; any other wallet gets 403.
@x402/fetch caps one payment at $1 by default; for long TTLs raise it with
\`client.setSpendControls({ maxAmountPerPayment: <atomic units> })\` or renew in several steps.

Settlement: reads and reversible effects (create mailbox, renew, webhooks, domain create/verify) settle only if the
call succeeded. Irreversible effects (send, deletes) settle first, after every check that could refuse them
(ownership, limits) has passed, so a refused call is never charged. Send Idempotency-Key on mutating calls: a
retry with the same key returns the first answer and is not charged again.

Prices: mailbox ${dollars(prices.mailbox)} for the first ${limits.defaultTtlMs / 3_600_000} h (${dollars(prices.mailboxDay)} per further day),
renew ${dollars(prices.mailboxDay)} per day, send ${dollars(prices.send)}, reads ${dollars(prices.read)}, custom domain ${dollars(prices.domain)}
(then ${dollars(prices.domainOp)} per call).

## Mailboxes

Addresses are random (16 characters) and unguessable. A mailbox lives ${limits.defaultTtlMs / 3_600_000} h unless you give a ttl
(up to ${limits.maxTtlDays} days) or renew it; within a minute of expiry it is deleted with all its mail. An expired
mailbox answers 404 and refuses mail at once. Incoming mail is checked (SPF, DKIM, DMARC: see each message's auth).

## Sending

From the mailbox's own address only, DKIM-signed with its domain's key; at most ${limits.maxSendBytes} bytes, a daily
limit per mailbox (429 with Retry-After when reached), a recipient limit; subject, addresses and file names must not
contain line breaks.

## Webhooks

POST /v1/mailboxes/:id/webhooks {url, secret}. Each delivery: POST JSON {id, event, createdAt, data} with headers
X-Relay-Event, X-Relay-Delivery (deduplicate on it: delivery is at least once) and
X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>. Verify on the raw body and reject a
t older than 5 minutes (replays). Non-2xx answers are retried with exponential backoff; after repeated failures the
webhook is disabled and the reason shown (GET /v1/mailboxes/:id); re-enable it with POST …/webhooks/:wh/enable.
The delivery log is GET /v1/mailboxes/:id/deliveries.

## Custom domains

POST /v1/domains {domain} returns the MX, SPF, DKIM and DMARC records to publish; POST /v1/domains/:id/verify checks
them through DNS and reports each record. Once verified, create mailboxes with {"domain": "<your domain>"}.
`;
}
