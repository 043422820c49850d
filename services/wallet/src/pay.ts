import {
  AppError,
  BlockedDestinationError,
  formatUsdc,
  invalidRequest,
  ResponseTooLargeError,
  TooManyRedirectsError,
} from '@agentstack/core';
import { x402Client, x402HTTPClient } from '@x402/core/client';
import type { PaymentRequired, PaymentRequirements, SettleResponse } from '@x402/core/types';
import type { Address } from 'viem';
import type { Ctx } from './context.js';
import type { JournalRow, WalletRow } from './db.js';
import { markConfirmed, markFailed, release } from './execute.js';
import { reserve } from './reserve.js';
import { signX402Payment } from './x402-signer.js';

export interface PayRequest {
  url: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers: Record<string, string>;
  body?: string;
  /** Refuse to pay more than this for the request (atomic USDC). */
  maxAmount?: bigint;
}

export interface PayResult {
  status: number;
  headers: Record<string, string>;
  body: string | null;
  bodyEncoding: 'utf8' | 'base64';
  url: string;
  paid: null | {
    amount: string;
    amountAtomic: string;
    payTo: string;
    network: string;
    journalId: string;
    status: JournalRow['status'];
    transaction: string | null;
  };
}

/** Headers a caller may not set on the outgoing request (hop-by-hop, or ours to set). */
const FORBIDDEN_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'payment-signature',
  'x-payment',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-connection',
]);

/** Response headers passed back to the caller. */
const RETURNED_HEADERS = ['content-type', 'content-language', 'location', 'payment-response', 'retry-after', 'etag'];

export function checkPayHeaders(headers: Record<string, string>): void {
  for (const name of Object.keys(headers)) {
    if (FORBIDDEN_HEADERS.has(name.toLowerCase())) {
      throw invalidRequest(`header ${name} cannot be set on a paid request`, `body.headers.${name}`);
    }
  }
}

/** Refuses a URL before anything is charged: scheme, credentials, and where its host resolves. */
export async function checkPayUrl(check: (url: URL) => Promise<unknown>, raw: string): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidRequest('url must be an absolute http(s) URL', 'body.url');
  }
  try {
    await check(url);
  } catch (err) {
    if (err instanceof BlockedDestinationError) throw invalidRequest(`url refused: ${err.reason}`, 'body.url');
    throw err;
  }
  return url;
}

const textual = (type: string | null) =>
  !type || /^text\/|json|xml|javascript|x-www-form-urlencoded|charset=/i.test(type);

async function toResult(res: Response, paid: PayResult['paid']): Promise<PayResult> {
  const headers: Record<string, string> = {};
  for (const name of RETURNED_HEADERS) {
    const value = res.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  const utf8 = textual(res.headers.get('content-type'));
  return {
    status: res.status,
    headers,
    body: utf8 ? bytes.toString('utf8') : bytes.toString('base64'),
    bodyEncoding: utf8 ? 'utf8' : 'base64',
    url: res.url,
    paid,
  };
}

/** The offer we can pay: exact scheme, our network, USDC by EIP-3009, within `maxAmount`. */
function chooseOffer(ctx: Ctx, required: PaymentRequired, maxAmount: bigint | undefined): PaymentRequirements {
  const usable = required.accepts.filter(
    (r) =>
      r.scheme === 'exact' &&
      r.network === ctx.settings.network &&
      r.asset.toLowerCase() === ctx.gateway.usdc.toLowerCase() &&
      (r.extra?.assetTransferMethod ?? 'eip3009') === 'eip3009' &&
      /^\d+$/.test(r.amount) &&
      BigInt(r.amount) > 0n,
  );
  if (usable.length === 0) {
    throw new AppError('payment_not_possible', 'the service asks for a payment this wallet cannot make', 422, {
      details: {
        wanted: { scheme: 'exact', network: ctx.settings.network, asset: ctx.gateway.usdc },
        offered: required.accepts.map((r) => ({
          scheme: r.scheme,
          network: r.network,
          asset: r.asset,
          amount: r.amount,
        })),
      },
    });
  }
  const cheapest = usable.reduce((a, b) => (BigInt(a.amount) <= BigInt(b.amount) ? a : b));
  if (maxAmount !== undefined && BigInt(cheapest.amount) > maxAmount) {
    throw new AppError(
      'payment_not_possible',
      `the service asks ${formatUsdc(BigInt(cheapest.amount))} USDC, more than maxAmount ${formatUsdc(maxAmount)}`,
      422,
      {
        field: 'body.maxAmount',
        details: { asked: formatUsdc(BigInt(cheapest.amount)), maxAmount: formatUsdc(maxAmount) },
      },
    );
  }
  return cheapest;
}

/**
 * Makes an HTTP request for a managed wallet, paying an x402 402 with the wallet's key under its policy:
 * request → 402 → choose the offer → policy + journal intent (atomic) → sign → retry with PAYMENT-SIGNATURE
 * → record the settlement. Every hop goes through the SSRF-safe fetch.
 */
export async function payOnBehalf(
  ctx: Ctx,
  input: { wallet: WalletRow; actor: 'owner' | 'agent'; caller: string; idempotencyRef?: string; request: PayRequest },
): Promise<PayResult> {
  const { wallet, request } = input;
  const init: RequestInit = {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined && request.method !== 'GET' ? { body: request.body } : {}),
  };
  const first = await fetchUpstream(ctx, request.url, init);
  if (first.status !== 402) return toResult(first, null);

  const http = new x402HTTPClient(new x402Client());
  let required: PaymentRequired;
  const text = await first.text();
  try {
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    required = http.getPaymentRequiredResponse((name) => first.headers.get(name), body);
  } catch {
    // A 402 without x402 terms: hand it back as it is.
    return {
      status: 402,
      headers: { 'content-type': first.headers.get('content-type') ?? 'text/plain' },
      body: text,
      bodyEncoding: 'utf8',
      url: first.url,
      paid: null,
    };
  }
  if (required.x402Version !== 2) {
    throw new AppError('payment_not_possible', 'only x402 version 2 payments are supported', 422);
  }
  const offer = chooseOffer(ctx, required, request.maxAmount);
  const target = new URL(first.url || request.url);
  const account = ctx.keys.account(wallet.address, wallet.sealed_key);
  const { payload, auth } = await signX402Payment(account, ctx.gateway, { ...required, accepts: [offer] });
  const amount = BigInt(offer.amount);
  const fromBlock = await ctx.gateway.recentBlock();
  const { entry } = await reserve(ctx, {
    wallet: wallet.address,
    kind: 'pay',
    scope: 'pay',
    direction: 'out',
    asset: 'USDC',
    amount,
    usdcValue: amount,
    usdcOut: amount,
    counterparty: offer.payTo.toLowerCase(),
    service: target.hostname.toLowerCase(),
    method: 'external3009',
    actor: input.actor,
    caller: input.caller,
    ...(input.idempotencyRef ? { idempotencyRef: input.idempotencyRef } : {}),
    feeSettled: true,
    policy: true,
    details: { url: target.href, fromBlock: fromBlock.toString(), network: offer.network },
    prepare: async () => ({ auth }),
  });

  let current = entry;
  try {
    current =
      (await ctx.db
        .updateTable('journal')
        .set({ status: 'submitted', submitted_at: ctx.clock.now(), updated_at: ctx.clock.now() })
        .where('id', '=', entry.id)
        .where('status', '=', 'intent')
        .returningAll()
        .executeTakeFirst()) ?? current;
    const paidHeaders = new Headers(request.headers);
    for (const [name, value] of Object.entries(http.encodePaymentSignatureHeader(payload)))
      paidHeaders.set(name, value);
    let second: Response;
    try {
      second = await fetchUpstream(ctx, target.href, { ...init, headers: paidHeaders });
    } catch (err) {
      // The signed payment may have been settled anyway: say what the chain says, the reconciler finishes it.
      if (await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as `0x${string}`)) {
        current = await markConfirmed(ctx, current, null);
      }
      if (err instanceof AppError) {
        throw new AppError(err.code, `${err.message} (after paying)`, err.status, {
          details: { journalId: current.id, paymentStatus: current.status, amount: formatUsdc(amount) },
        });
      }
      throw err;
    }
    let settle: SettleResponse | undefined;
    try {
      settle = http.getPaymentSettleResponse((name) => second.headers.get(name));
    } catch {
      settle = undefined;
    }
    if (settle?.success) {
      current = await markConfirmed(ctx, current, settle.transaction || null, { payer: settle.payer });
    } else if (
      second.status === 402 &&
      !(await ctx.gateway.authorizationUsed(auth.from as Address, auth.nonce as `0x${string}`))
    ) {
      current = await markFailed(ctx, current, `the service refused the payment: ${settle?.errorReason ?? '402'}`, {
        onChain: true,
      });
    }
    const paid = {
      amount: formatUsdc(amount),
      amountAtomic: amount.toString(),
      payTo: offer.payTo,
      network: offer.network,
      journalId: current.id,
      status: current.status,
      transaction: settle?.transaction || null,
    };
    return await toResult(second, paid);
  } finally {
    await release(ctx, current);
  }
}

async function fetchUpstream(ctx: Ctx, url: string, init: RequestInit): Promise<Response> {
  try {
    return await ctx.payFetch(url, init);
  } catch (err) {
    if (err instanceof BlockedDestinationError) throw invalidRequest(`url refused: ${err.reason}`, 'body.url');
    if (err instanceof TooManyRedirectsError || err instanceof ResponseTooLargeError) {
      throw new AppError('upstream_refused', err.message, 502);
    }
    if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') {
      throw new AppError('upstream_timeout', `the service did not answer within ${ctx.settings.payTimeoutMs} ms`, 504);
    }
    throw new AppError('upstream_unavailable', `the service could not be reached: ${(err as Error).message}`, 502);
  }
}
