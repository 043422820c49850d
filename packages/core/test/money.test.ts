import { describe, expect, it } from 'vitest';
import {
  centsToMicros,
  divCeil,
  formatMicros,
  formatUsdc,
  MoneyError,
  parseDollarsToMicros,
  parseUsdc,
  toBigInt,
} from '../src/money.js';

describe('USDC amounts', () => {
  it('parses decimal strings into atomic units', () => {
    expect(parseUsdc('0.01')).toBe(10_000n);
    expect(parseUsdc('1')).toBe(1_000_000n);
    expect(parseUsdc('123.456789')).toBe(123_456_789n);
    expect(parseUsdc('0')).toBe(0n);
  });

  it('formats atomic units back', () => {
    expect(formatUsdc(10_000n)).toBe('0.01');
    expect(formatUsdc(1_000_000n)).toBe('1.00');
    expect(formatUsdc(123_456_789n)).toBe('123.456789');
    expect(formatUsdc(1n)).toBe('0.000001');
  });

  it.each([
    [0.01, 'decimal string'],
    ['-1', 'negative'],
    ['0.0000001', 'more than 6 decimal places'],
    ['1e3', 'decimal string'],
    ['', 'decimal string'],
    ['1.', 'decimal string'],
    ['.5', 'decimal string'],
    [null, 'decimal string'],
  ])('rejects %j (%s)', (input, message) => {
    expect(() => parseUsdc(input)).toThrow(MoneyError);
    expect(() => parseUsdc(input)).toThrow(message);
  });
});

describe('platform credits in micro-dollars', () => {
  it('one cent is 10,000 micro-dollars', () => {
    expect(centsToMicros(1n)).toBe(10_000n);
    expect(parseDollarsToMicros('10.00')).toBe(10_000_000n);
    expect(formatMicros(3_000n)).toBe('0.003');
  });

  it('rounds charges up exactly once', () => {
    expect(divCeil(1n, 1_000_000n)).toBe(1n);
    expect(divCeil(2_000_000n, 1_000_000n)).toBe(2n);
    expect(divCeil(0n, 7n)).toBe(0n);
    expect(() => divCeil(1n, 0n)).toThrow(MoneyError);
  });

  it('reads database integers without going through floats', () => {
    expect(toBigInt('9007199254740993')).toBe(9_007_199_254_740_993n);
    expect(() => toBigInt('1.5')).toThrow(MoneyError);
    expect(() => toBigInt(1.5)).toThrow(MoneyError);
  });
});
