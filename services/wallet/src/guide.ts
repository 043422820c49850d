/** The prose of /llms.txt ahead of the generated route list: how an agent pays, authenticates and stays safe. */
export function llmsGuide(input: {
  network: string;
  usdc: string;
  payTo: string;
  breakerThreshold: number;
  fundRequestTtlSeconds: number;
}): string {
  const days = input.fundRequestTtlSeconds / 86_400;
  return `
## How to pay

Every route except create, health and the documents is paid per call with x402 v2: USDC (${input.usdc}) on
${input.network}, paid to ${input.payTo}. Call the route; a 402 answer carries a PAYMENT-REQUIRED header;
retry with a PAYMENT-SIGNATURE header (an EIP-3009 authorization of exactly that amount). A settled call
answers with PAYMENT-RESPONSE. The official client does this for you:

    import { wrapFetchWithPayment, x402Client } from '@x402/fetch';
    import { registerExactEvmScheme } from '@x402/evm/exact/client';
    const client = new x402Client();
    registerExactEvmScheme(client, { signer });          // a viem account
    const paidFetch = wrapFetchWithPayment(fetch, client);

@x402/fetch refuses to pay more than $1 per payment by default. Route fees here are far below that, but
\`pay\` may be asked for more: raise the cap with spendControls, e.g.
\`client.setSpendControls({ maxAmountPerPayment: '$5' })\` (or \`allowedAssets: [{ network: '${input.network}',
asset: '${input.usdc}', maxAmountPerPayment: '5000000' }]\` in atomic units). Settlement order per route is in the
route list below: "only if the call succeeds" routes never charge a failed call; "before the effect" routes move
money and charge even if the effect then fails (the answer says so). Send Idempotency-Key on every mutating
call: a retry with the same key returns the first answer and is never charged or executed twice.

## Who may act on a wallet

- Create is free and returns two secrets, once. Store them; the service keeps only their hashes.
- The owner: the payer of the first paid request that carries \`X-Claim-Token: <claimToken>\` (single use; an
  expired or used token is refused with a 4xx naming the header). The owner can do everything.
- The agent: sends \`Authorization: Bearer <agentToken>\` and no payment header. Its route fees are paid from the
  managed wallet itself (the service signs them) and count toward the policy's daily total (so once maxPerDay is
  used up, even the agent's reads are refused until 00:00 UTC; the owner still reads). It may send, swap,
  pay, ask for funds and read; owner-only routes (policy, pause/resume, delete, notifications, token rotation,
  approving funding requests) answer 403. A managed wallet that owns other wallets acts as their owner with its
  own agent token.
- Anyone else gets 403; an unknown wallet 404.

## Money

Amounts are decimal strings: USDC with at most 6 decimals, ETH with at most 18. USDC sends need no ETH (the
service's gas account relays the wallet's EIP-3009 authorization); ETH sends pay their own gas in ETH from the
wallet. Swaps go through a Uniswap-V2 router: quoted first, refused or refunded past maxSlippageBps, with a
deadline.

## Safety

- Policy (PUT …/policy): maxPerTx, maxPerDay (resets 00:00 UTC, fees included), per-recipient and per-service
  daily caps, allow/deny lists, autoPauseBelow. Checked atomically per wallet for send, swap and pay; a refusal is
  422 policy_violation with details.rule and details.remaining (the largest amount allowed now).
- Journal: every movement is recorded before it is sent (intent → submitted → confirmed | failed); a crash or
  restart never sends twice; see …/history.
- Breaker: the owner pauses a scope (all, send, swap, pay); ${input.breakerThreshold} consecutive failed on-chain
  operations pause a scope by themselves; a paused scope answers 409 wallet_paused until the owner resumes it.
  The operator's kill switch stops all money movement (409 wallet_paused, pausedBy operator).
- Funding requests expire after ${days} days. Approve with an authorization the owner signs; the owner pays no gas.
- Notifications to the owner are webhooks signed \`X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw
  body>")>\` with X-Webhook-Id (dedupe) and X-Webhook-Event; verify on the raw body and refuse timestamps older
  than 5 minutes. Failed deliveries are retried with exponential backoff; see …/deliveries.
`;
}
