/** Micro-dollars (1 cent = 10,000 µ$) as the platform sends them: decimal strings. Never floats for money. */

const MICROS_PER_DOLLAR = 1_000_000n;

export function parseMicros(value: string | bigint | number | null | undefined): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(Math.trunc(value));
  if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) return BigInt(value.trim());
  return 0n;
}

/**
 * `$9.99` when the amount is whole cents, otherwise every significant micro-dollar (`$9.996812`): a chat turn
 * costs fractions of a cent, and the balance should visibly move by exactly what was charged.
 */
export function formatDollars(micros: bigint | string): string {
  const value = parseMicros(micros);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / MICROS_PER_DOLLAR;
  let fraction = (abs % MICROS_PER_DOLLAR).toString().padStart(6, '0').replace(/0+$/, '');
  if (fraction.length < 2) fraction = fraction.padEnd(2, '0');
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}$${grouped}.${fraction}`;
}

export interface ModelPrice {
  name: string;
  displayName: string;
  provider: string;
  demo: boolean;
  pricing: { inputPerMillionMicros: string; outputPerMillionMicros: string };
}

/** Cost of one call in micro-dollars, rounded up once like the LLM proxy does. */
export function estimateCostMicros(model: ModelPrice, inputTokens: number, outputTokens: number): bigint {
  const count = (n: number) => (Number.isFinite(n) && n > 0 ? BigInt(Math.floor(n)) : 0n);
  const tokensIn = count(inputTokens);
  const tokensOut = count(outputTokens);
  const numerator =
    tokensIn * parseMicros(model.pricing.inputPerMillionMicros) +
    tokensOut * parseMicros(model.pricing.outputPerMillionMicros);
  return (numerator + 999_999n) / 1_000_000n;
}
