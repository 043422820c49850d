import type { ModelRow } from '../store.js';

/**
 * What an LLM call costs, in micro-dollars (µ$), with integers only.
 *
 * Prices are µ$ per million tokens, so the exact provider cost of a call is the rational number
 *     cost  = (input × price_in + output × price_out) / 1,000,000            µ$
 * and the exact charge, with the model's markup m (whole percent), is
 *     charge = cost × (100 + m) / 100.
 * Rounding happens in exactly one place, `priceCall`, and only upwards:
 *   - chargeMicros = ⌈ (input × price_in + output × price_out) × (100 + m) / 100,000,000 ⌉ — the amount the
 *     tenant is debited: cost + margin, rounded up once to the micro-dollar;
 *   - costMicros   = ⌈ (input × price_in + output × price_out) / 1,000,000 ⌉ — what we owe the provider,
 *     never understated;
 *   - marginMicros = chargeMicros − costMicros (≥ 0 because m ≥ 0), so cost + margin is exactly the debit.
 * Everything is bigint: a million output tokens of a $75/M model is 7.5e13 before the markup factor, past
 * what a double holds exactly.
 */

export interface Price {
  inputPerMillionMicros: bigint;
  outputPerMillionMicros: bigint;
  markupPct: number;
}

export interface CallPrice {
  costMicros: bigint;
  marginMicros: bigint;
  chargeMicros: bigint;
}

const MILLION = 1_000_000n;
const HUNDRED_MILLION = 100_000_000n;

export const priceOf = (row: ModelRow): Price => ({
  inputPerMillionMicros: row.provider_cost_input_per_m_micros,
  outputPerMillionMicros: row.provider_cost_output_per_m_micros,
  markupPct: row.markup_pct,
});

const ceilDiv = (numerator: bigint, denominator: bigint) => (numerator + denominator - 1n) / denominator;

function assertPrice(price: Price): void {
  if (price.inputPerMillionMicros < 0n || price.outputPerMillionMicros < 0n) throw new RangeError('negative price');
  if (!Number.isInteger(price.markupPct) || price.markupPct < 0) throw new RangeError('markup must be a whole % ≥ 0');
}

function tokens(value: number | bigint, what: string): bigint {
  const n = typeof value === 'bigint' ? value : BigInt(value);
  if (n < 0n) throw new RangeError(`${what} tokens must not be negative`);
  return n;
}

/** The cost, margin and charge of a call with these token counts (the one place money is rounded). */
export function priceCall(price: Price, inputTokens: number | bigint, outputTokens: number | bigint): CallPrice {
  assertPrice(price);
  const scaled =
    tokens(inputTokens, 'input') * price.inputPerMillionMicros +
    tokens(outputTokens, 'output') * price.outputPerMillionMicros;
  const chargeMicros = ceilDiv(scaled * BigInt(100 + price.markupPct), HUNDRED_MILLION);
  const costMicros = ceilDiv(scaled, MILLION);
  return { costMicros, marginMicros: chargeMicros - costMicros, chargeMicros };
}

/**
 * The most output tokens a call with `inputTokens` can produce while its charge stays within `balanceMicros`
 * (the largest T with charge(input, T) ≤ balance); `Infinity` when output is free and the input fits; -1 when
 * not even the input fits.
 */
export function affordableOutputTokens(price: Price, inputTokens: number, balanceMicros: bigint): number {
  assertPrice(price);
  const factor = BigInt(100 + price.markupPct);
  // charge(T) ≤ B  ⟺  ⌈(in·p_in + T·p_out)·factor / 1e8⌉ ≤ B  ⟺  (in·p_in + T·p_out)·factor ≤ B·1e8
  const room = balanceMicros * HUNDRED_MILLION - tokens(inputTokens, 'input') * price.inputPerMillionMicros * factor;
  if (room < 0n) return -1;
  if (price.outputPerMillionMicros === 0n) return Number.POSITIVE_INFINITY;
  const t = room / (price.outputPerMillionMicros * factor);
  return t > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(t);
}

export interface ReservationPlanInput {
  price: Price;
  /** Upper bound of the input tokens (estimate.ts). */
  inputTokens: number;
  /** max_tokens / max_completion_tokens the client asked for, if any. */
  requestedMaxTokens: number | undefined;
  /** The model's most output tokens per request (models.max_output_tokens). */
  modelMaxOutputTokens: number;
  /** The fewest output tokens a call is worth making with (unless the client asked for fewer). */
  minOutputTokens: number;
  /** The balance available now (holds of calls in flight already taken off). */
  balanceMicros: bigint;
}

export type ReservationPlan =
  | { ok: true; maxTokens: number; reserveMicros: bigint; capped: boolean }
  | { ok: false; minimumMicros: bigint; minOutputTokens: number };

/**
 * How much to hold before forwarding a call, and the max_tokens to forward so the hold covers the worst case:
 * the client's max_tokens (or the model's maximum when none was given), lowered to the model's maximum and
 * then to what the balance affords. When the balance cannot cover the input plus `minOutputTokens` (or the
 * client's smaller max_tokens), the call is refused: `minimumMicros` is what that smallest call would hold.
 */
export function planReservation(input: ReservationPlanInput): ReservationPlan {
  const wanted = Math.min(input.requestedMaxTokens ?? input.modelMaxOutputTokens, input.modelMaxOutputTokens);
  const floor = Math.max(1, Math.min(wanted, input.minOutputTokens));
  const affordable = affordableOutputTokens(input.price, input.inputTokens, input.balanceMicros);
  if (affordable < floor) {
    return {
      ok: false,
      minimumMicros: priceCall(input.price, input.inputTokens, floor).chargeMicros,
      minOutputTokens: floor,
    };
  }
  const maxTokens = Math.min(wanted, affordable);
  return {
    ok: true,
    maxTokens,
    reserveMicros: priceCall(input.price, input.inputTokens, maxTokens).chargeMicros,
    capped: input.requestedMaxTokens !== undefined ? maxTokens < input.requestedMaxTokens : maxTokens < wanted,
  };
}
