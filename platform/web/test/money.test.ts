import { describe, expect, it } from 'vitest';
import { estimateCostMicros, formatDollars, type ModelPrice, parseMicros } from '../src/lib/money';

describe('formatDollars', () => {
  it('shows whole cents with two decimals and fractions of a cent exactly', () => {
    expect(formatDollars('10000000')).toBe('$10.00');
    expect(formatDollars('9990000')).toBe('$9.99');
    expect(formatDollars('9996812')).toBe('$9.996812');
    expect(formatDollars('9997000')).toBe('$9.997');
    expect(formatDollars('0')).toBe('$0.00');
    expect(formatDollars('-3000')).toBe('-$0.003');
    expect(formatDollars(1_234_567_890_000n)).toBe('$1,234,567.89');
  });

  it('reads only integer strings as micros', () => {
    expect(parseMicros('42')).toBe(42n);
    expect(parseMicros('4.2')).toBe(0n);
    expect(parseMicros(undefined)).toBe(0n);
  });
});

describe('estimateCostMicros', () => {
  const model: ModelPrice = {
    name: 'gpt-4o',
    displayName: 'GPT-4o',
    provider: 'openai',
    demo: false,
    pricing: { inputPerMillionMicros: '3250000', outputPerMillionMicros: '13000000' },
  };

  it('prices input and output tokens per million and rounds up once', () => {
    expect(estimateCostMicros(model, 1_000_000, 0)).toBe(3_250_000n);
    expect(estimateCostMicros(model, 0, 1_000)).toBe(13_000n);
    // 1 input token = 3.25 µ$ → 4 µ$ (rounded up once, not per part)
    expect(estimateCostMicros(model, 1, 0)).toBe(4n);
    expect(estimateCostMicros(model, 1, 1)).toBe(17n);
    expect(estimateCostMicros(model, -5, Number.NaN)).toBe(0n);
  });
});
