import { z } from 'zod';

/**
 * Money is integers in the smallest unit, always `bigint`:
 * - USDC in atomic units (6 decimals): "0.01" USDC = 10_000n.
 * - Platform credits in micro-dollars (µ$): $1 = 1_000_000n, 1 cent = 10_000n.
 * Decimal strings are the only accepted textual form; numbers (floats) are refused outright.
 */
export class MoneyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MoneyError';
  }
}

export const USDC_DECIMALS = 6;
export const MICROS_PER_DOLLAR = 1_000_000n;
export const MICROS_PER_CENT = 10_000n;

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** Parses a non-negative decimal string with at most `decimals` fraction digits into integer units. */
export function parseDecimal(value: unknown, decimals: number): bigint {
  if (typeof value !== 'string') {
    throw new MoneyError(`amount must be a decimal string like "0.01", got ${typeof value}`);
  }
  const match = DECIMAL.exec(value.trim());
  if (!match) {
    if (value.trim().startsWith('-')) throw new MoneyError('amount must not be negative');
    throw new MoneyError(`amount must be a decimal string like "0.01", got ${JSON.stringify(value)}`);
  }
  const whole = match[1] ?? '0';
  const fraction = match[2] ?? '';
  if (fraction.length > decimals) {
    throw new MoneyError(`amount has more than ${decimals} decimal places`);
  }
  return BigInt(whole) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, '0') || '0');
}

/** Formats integer units as a decimal string with trailing zeros trimmed (keeps at least two decimals for readability). */
export function formatDecimal(units: bigint, decimals: number, minFraction = 2): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const base = 10n ** BigInt(decimals);
  const whole = abs / base;
  let fraction = (abs % base).toString().padStart(decimals, '0').replace(/0+$/, '');
  if (fraction.length < minFraction) fraction = fraction.padEnd(Math.min(minFraction, decimals), '0');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** "0.01" → 10_000n atomic USDC. Rejects floats, negatives and more than 6 decimals. */
export const parseUsdc = (value: unknown): bigint => parseDecimal(value, USDC_DECIMALS);
/** 10_000n → "0.01". */
export const formatUsdc = (atomic: bigint): string => formatDecimal(atomic, USDC_DECIMALS);

/** "10.00" dollars → 10_000_000n micro-dollars. */
export const parseDollarsToMicros = (value: unknown): bigint => parseDecimal(value, 6);
/** 10_000_000n micro-dollars → "10.00". */
export const formatMicros = (micros: bigint): string => formatDecimal(micros, 6);
export const centsToMicros = (cents: bigint): bigint => cents * MICROS_PER_CENT;

/** Divides rounding up (for charges: never undercharge by a fraction of a unit). Both operands non-negative. */
export function divCeil(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new MoneyError('denominator must be positive');
  if (numerator < 0n) throw new MoneyError('numerator must not be negative');
  return (numerator + denominator - 1n) / denominator;
}

/** Accepts a bigint or a decimal-integer string (as PostgreSQL returns `bigint`/`numeric`) and returns a bigint. */
export function toBigInt(value: bigint | string | number): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new MoneyError(`not a safe integer: ${value}`);
    return BigInt(value);
  }
  if (!/^-?\d+$/.test(value)) throw new MoneyError(`not an integer: ${JSON.stringify(value)}`);
  return BigInt(value);
}

/**
 * A USDC amount in a JSON API: a decimal string with at most 6 decimals, parsed to atomic units.
 * Floats, negatives and over-precise values fail validation with a message naming the rule.
 */
export function usdcAmountSchema({ allowZero = false }: { allowZero?: boolean } = {}) {
  return z.string({ message: 'expected a decimal string like "0.01"' }).transform((value, ctx) => {
    try {
      const atomic = parseUsdc(value);
      if (!allowZero && atomic === 0n) {
        ctx.addIssue({ code: 'custom', message: 'amount must be greater than zero' });
        return z.NEVER;
      }
      return atomic;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}
