import { createHash } from 'node:crypto';
import { AppError, invalidRequest, type Logger, upstreamUnavailable } from '@agentstack/core';
import {
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  encodePaymentResponseHeader,
} from '@x402/core/http';
import { type FacilitatorClient, x402ResourceServer } from '@x402/core/server';
import type { Network, PaymentPayload, PaymentRequirements, SettleResponse } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/server';
import type { Context, MiddlewareHandler } from 'hono';
import { getAddress } from 'viem';
import type { IdempotencyScope, StoredResponse, X402Store } from './store.js';

export interface PaymentAsset {
  address: `0x${string}`;
  /** EIP-712 domain of the token (Base USDC: "USD Coin" / "2"). */
  name: string;
  version: string;
}

export interface PaymentGateOptions {
  facilitator: FacilitatorClient;
  network: Network;
  payTo: `0x${string}`;
  asset: PaymentAsset;
  store: X402Store;
  serviceName: string;
  /** How long a client's signed payment stays valid for us to settle. */
  maxTimeoutSeconds?: number;
  /** How long an in-progress idempotent request holds its key before another attempt may take over. */
  idempotencyLeaseMs?: number;
  log?: Logger;
}

/** What a paid handler learns about the request's payment. */
export interface PaymentInfo {
  payer: `0x${string}`;
  amount: bigint;
  network: Network;
  /** Set once the payment has settled (before the handler for settle-first routes). */
  transaction?: string;
}

export type PaidVariables = { payer: `0x${string}`; payment: PaymentInfo };

export type Settlement = 'after-success' | 'first';

export interface PaidRouteOptions {
  /** Price in atomic USDC, fixed or computed from the (already validated) request. */
  price: bigint | ((c: Context) => bigint | Promise<bigint>);
  /**
   * `after-success`: reads and reversible effects — the handler runs on a verified payment and the payment
   * settles only if the handler answered < 400. `first`: irreversible effects — settle, then run the handler.
   */
  settle: Settlement;
  description?: string;
  /**
   * Checks that need the verified payer (ownership, quotas) and must pass before any money moves. Runs after
   * the payment verified and before it settles, for both orders; throwing (e.g. an AppError 403/404/429)
   * answers the request with that error and the payment is never settled. Essential for `settle: 'first'`
   * routes, whose handler runs only after settlement.
   */
  precheck?: (c: Context) => Promise<void>;
  /**
   * Undo what was done for a payment that then failed to settle: a reversible effect of an `after-success`
   * handler, or a reservation made by `precheck` on a `first` route.
   */
  onSettleFailure?: (c: Context) => Promise<void>;
  /**
   * Supplies a payment when the request carries none (e.g. wallet.sh paying a managed wallet's own fee for a
   * request authenticated by its agent token). Returning undefined falls back to answering 402.
   */
  internalPayment?: (c: Context, requirements: PaymentRequirements) => Promise<PaymentPayload | undefined>;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
export const PAYMENT_HEADER = 'payment-signature';

/**
 * x402 protocol v2 for Hono routes, built on the official `@x402/core` resource server and exact EVM scheme.
 * One instance per service; `paid()` per route. This is where the project's settlement order and
 * Idempotency-Key rules live, once.
 */
export class PaymentGate {
  readonly server: x402ResourceServer;
  private initialized: Promise<void> | undefined;
  private readonly maxTimeoutSeconds: number;
  private readonly leaseMs: number;

  constructor(private readonly options: PaymentGateOptions) {
    this.server = new x402ResourceServer(options.facilitator).register(options.network, new ExactEvmScheme());
    this.maxTimeoutSeconds = options.maxTimeoutSeconds ?? 300;
    this.leaseMs = options.idempotencyLeaseMs ?? 5 * 60_000;
  }

  /**
   * Fetches what the facilitator supports. Failures are reported per request (503) instead of exiting the
   * process, and retried on the next request.
   */
  async ready(): Promise<void> {
    if (!this.initialized) {
      this.initialized = this.server.initialize().catch((err) => {
        this.initialized = undefined;
        throw err;
      });
    }
    await this.initialized;
  }

  async requirementsFor(amount: bigint, c: Context): Promise<PaymentRequirements[]> {
    try {
      await this.ready();
      return await this.server.buildPaymentRequirements({
        scheme: 'exact',
        network: this.options.network,
        payTo: this.options.payTo,
        maxTimeoutSeconds: this.maxTimeoutSeconds,
        price: {
          asset: this.options.asset.address,
          amount: amount.toString(),
          extra: { name: this.options.asset.name, version: this.options.asset.version },
        },
      });
    } catch (err) {
      this.options.log?.error({ err, path: c.req.path }, 'x402 facilitator unavailable');
      throw upstreamUnavailable('payment facilitator unavailable; try again shortly');
    }
  }

  paid(route: PaidRouteOptions): MiddlewareHandler<{ Variables: PaidVariables }> {
    return async (c, next) => {
      const amount = typeof route.price === 'bigint' ? route.price : await route.price(c);
      if (amount <= 0n) throw invalidRequest('computed price must be positive', 'body');
      const requirements = await this.requirementsFor(amount, c);
      const resource = {
        url: c.req.url,
        description: route.description ?? `${c.req.method} ${c.req.routePath}`,
        mimeType: 'application/json',
        serviceName: this.options.serviceName,
      };
      const paymentRequired = async (reason: string, message: string, payload?: PaymentPayload) => {
        const body = await this.server.createPaymentRequiredResponse(
          requirements,
          resource,
          reason,
          undefined,
          undefined,
          payload,
        );
        const envelope = {
          error: { code: 'payment_required', message, status: 402, details: { reason, accepts: body.accepts } },
        };
        return new Response(JSON.stringify(envelope), {
          status: 402,
          headers: {
            'content-type': 'application/json',
            'cache-control': 'no-store',
            'PAYMENT-REQUIRED': encodePaymentRequiredHeader(body),
          },
        });
      };

      let payload: PaymentPayload | undefined;
      const header = c.req.header(PAYMENT_HEADER) ?? c.req.header('x-payment');
      if (header) {
        try {
          payload = decodePaymentSignatureHeader(header);
        } catch {
          return paymentRequired('invalid_payment_header', 'PAYMENT-SIGNATURE is not a valid x402 payment');
        }
      } else if (route.internalPayment) {
        const first = requirements[0];
        if (first) payload = await route.internalPayment(c, first);
      }
      if (!payload) return paymentRequired('payment_required', `this route costs ${describe(amount)} USDC`);

      const matching = safeMatch(this.server, requirements, payload);
      if (!matching) {
        return paymentRequired(
          'no_matching_requirements',
          'the payment does not match this route (amount, asset, network or recipient differ)',
          payload,
        );
      }
      let verified: { isValid: boolean; payer?: string; invalidReason?: string; invalidMessage?: string };
      try {
        verified = await this.server.verifyPayment(payload, matching);
      } catch (err) {
        const reason = (err as { invalidReason?: string }).invalidReason;
        if (reason) verified = { isValid: false, invalidReason: reason };
        else {
          this.options.log?.error({ err }, 'x402 verify failed');
          throw upstreamUnavailable('payment facilitator unavailable; try again shortly');
        }
      }
      if (!verified.isValid || !verified.payer) {
        const reason = verified.invalidReason ?? 'invalid_payment';
        return paymentRequired(reason, `payment refused: ${verified.invalidMessage ?? reason}`, payload);
      }

      const payer = getAddress(verified.payer);
      const payment: PaymentInfo = { payer, amount, network: this.options.network };
      c.set('payer', payer);
      c.set('payment', payment);

      // Idempotency first: a retry of a finished request answers the first response and never settles.
      const key = c.req.header('idempotency-key');
      let scope: IdempotencyScope | undefined;
      if (key !== undefined && c.req.method !== 'GET') {
        if (!IDEMPOTENCY_KEY.test(key)) {
          throw invalidRequest('Idempotency-Key must be 1-255 printable ASCII characters', 'header.idempotency-key');
        }
        scope = { payer, route: `${c.req.method} ${c.req.path}`, key, requestHash: await requestHash(c) };
        const begun = await this.options.store.beginIdempotent(scope, this.leaseMs);
        if (begun.kind === 'replay') return replay(begun.response);
        if (begun.kind === 'mismatch') {
          throw new AppError('conflict', 'this Idempotency-Key was already used with a different request', 409, {
            field: 'header.idempotency-key',
          });
        }
        if (begun.kind === 'in_progress') {
          throw new AppError('conflict', 'a request with this Idempotency-Key is still in progress', 409, {
            field: 'header.idempotency-key',
          });
        }
      }

      // One signed authorization pays for one request, even when two arrive at once.
      const claimId = paymentId(this.options.network, payload, header);
      if (!(await this.options.store.claimPayment(claimId, claimExpiry(payload, this.maxTimeoutSeconds)))) {
        if (scope) await this.options.store.abandonIdempotent(scope);
        return paymentRequired('payment_in_use', 'this payment is already being used by another request', payload);
      }

      if (route.precheck) {
        try {
          await route.precheck(c);
        } catch (err) {
          await this.options.store.releasePayment(claimId);
          if (scope) await this.options.store.abandonIdempotent(scope);
          throw err;
        }
      }

      const settle = async (): Promise<SettleResponse> => {
        try {
          return await this.server.settlePayment(payload, matching);
        } catch (err) {
          this.options.log?.warn({ err }, 'x402 settle failed');
          const reason = (err as { errorReason?: string }).errorReason ?? 'settlement_failed';
          return { success: false, errorReason: reason, transaction: '', network: this.options.network };
        }
      };
      const fail = async (result: SettleResponse) => {
        await this.options.store.releasePayment(claimId);
        if (scope) await this.options.store.abandonIdempotent(scope);
        return paymentRequired(
          result.errorReason ?? 'settlement_failed',
          `payment could not be settled: ${result.errorMessage ?? result.errorReason ?? 'unknown reason'}`,
          payload,
        );
      };

      if (route.settle === 'first') {
        const settled = await settle();
        if (!settled.success) {
          if (route.onSettleFailure) await route.onSettleFailure(c);
          return fail(settled);
        }
        payment.transaction = settled.transaction;
        await next();
        c.res.headers.set('PAYMENT-RESPONSE', encodePaymentResponseHeader(settled));
        // The money moved: whatever the handler answered is the answer to every retry.
        if (scope) await this.options.store.completeIdempotent(scope, await snapshot(c.res));
        return;
      }

      await next();
      if (c.res.status >= 400) {
        await this.options.store.releasePayment(claimId);
        if (scope) await this.options.store.abandonIdempotent(scope);
        return;
      }
      const settled = await settle();
      if (!settled.success) {
        if (route.onSettleFailure) await route.onSettleFailure(c);
        // Drop the handler's response (it was not paid for) without merging its headers into ours.
        c.res = undefined as unknown as Response;
        c.res = await fail(settled);
        return;
      }
      payment.transaction = settled.transaction;
      c.res.headers.set('PAYMENT-RESPONSE', encodePaymentResponseHeader(settled));
      if (scope) await this.options.store.completeIdempotent(scope, await snapshot(c.res));
    };
  }
}

function safeMatch(server: x402ResourceServer, requirements: PaymentRequirements[], payload: PaymentPayload) {
  try {
    return server.findMatchingRequirements(requirements, payload);
  } catch {
    return undefined;
  }
}

function describe(amount: bigint): string {
  const whole = amount / 1_000_000n;
  const fraction = (amount % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}

async function requestHash(c: Context): Promise<string> {
  const body = ['GET', 'HEAD'].includes(c.req.method) ? '' : await c.req.text();
  return createHash('sha256').update(`${c.req.method}\n${c.req.url}\n${body}`).digest('hex');
}

interface Eip3009Payload {
  authorization?: { from?: string; nonce?: string; validBefore?: string | number };
}

function paymentId(network: string, payload: PaymentPayload, header: string | undefined): string {
  const auth = (payload.payload as Eip3009Payload).authorization;
  if (auth?.from && auth.nonce) return `${network}:${auth.from.toLowerCase()}:${auth.nonce.toLowerCase()}`;
  return `${network}:sha256:${createHash('sha256')
    .update(header ?? JSON.stringify(payload.payload))
    .digest('hex')}`;
}

function claimExpiry(payload: PaymentPayload, maxTimeoutSeconds: number): Date {
  const validBefore = Number((payload.payload as Eip3009Payload).authorization?.validBefore);
  if (Number.isFinite(validBefore) && validBefore > 0) return new Date(validBefore * 1000 + 60_000);
  return new Date(Date.now() + maxTimeoutSeconds * 1000);
}

const REPLAYED_HEADERS = ['content-type', 'location', 'payment-response'];

async function snapshot(res: Response): Promise<StoredResponse> {
  const headers: Record<string, string> = {};
  for (const name of REPLAYED_HEADERS) {
    const value = res.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return { status: res.status, headers, body: await res.clone().text() };
}

function replay(stored: StoredResponse): Response {
  return new Response(stored.body, {
    status: stored.status,
    headers: { ...stored.headers, 'idempotent-replayed': 'true' },
  });
}
