import { describe, expect, it } from 'vitest';
import { affordableOutputTokens, planReservation, priceCall } from '../../../src/llm-proxy/billing.js';
import {
  inputTokensUpperBound,
  TOKENS_FOR_TOOLS,
  TOKENS_PER_IMAGE,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_REQUEST,
  typicalInputTokens,
  typicalTokens,
} from '../../../src/llm-proxy/estimate.js';
import { chatRequestSchema } from '../../../src/llm-proxy/openai-schema.js';
import { retryAfterSeconds } from '../../../src/llm-proxy/rate-limit.js';

const price = (inM: bigint, outM: bigint, markupPct: number) => ({
  inputPerMillionMicros: inM,
  outputPerMillionMicros: outM,
  markupPct,
});

describe('priceCall: cost + margin, rounded up once to the micro-dollar', () => {
  it('is exact when the numbers divide', () => {
    // 1M input tokens of a $2.50/M model: $2.50 cost, 30 % margin $0.75.
    expect(priceCall(price(2_500_000n, 10_000_000n, 30), 1_000_000, 0)).toEqual({
      costMicros: 2_500_000n,
      marginMicros: 750_000n,
      chargeMicros: 3_250_000n,
    });
    expect(priceCall(price(2_500_000n, 10_000_000n, 0), 1_000_000, 1_000_000)).toEqual({
      costMicros: 12_500_000n,
      marginMicros: 0n,
      chargeMicros: 12_500_000n,
    });
  });

  it('a call of nothing costs nothing', () => {
    expect(priceCall(price(3_000_000n, 15_000_000n, 30), 0, 0)).toEqual({
      costMicros: 0n,
      marginMicros: 0n,
      chargeMicros: 0n,
    });
  });

  it('the smallest fraction is charged a whole micro-dollar (rounding up, never down)', () => {
    // One token at $1 per million is 1 µ$ exactly; at $0.10 per million it is 0.1 µ$ → charged 1 µ$.
    expect(priceCall(price(1_000_000n, 0n, 0), 1, 0).chargeMicros).toBe(1n);
    expect(priceCall(price(100_000n, 0n, 0), 1, 0)).toEqual({ costMicros: 1n, marginMicros: 0n, chargeMicros: 1n });
    expect(priceCall(price(100_000n, 0n, 30), 1, 0).chargeMicros).toBe(1n);
    // 10 tokens at $0.10/M = 1 µ$ exactly, + 30 % = 1.3 µ$ → 2 µ$.
    expect(priceCall(price(100_000n, 0n, 30), 10, 0)).toEqual({ costMicros: 1n, marginMicros: 1n, chargeMicros: 2n });
  });

  it('rounds once, on the sum: 1.2 µ$ + 50 % = 1.8 µ$ is charged 2 µ$, not ⌈1.2⌉ + ⌈0.6⌉ = 3', () => {
    // 12 input tokens at $0.10/M = 1.2 µ$.
    expect(priceCall(price(100_000n, 0n, 50), 12, 0)).toEqual({ costMicros: 2n, marginMicros: 0n, chargeMicros: 2n });
    // 1.5 µ$ + 30 % = 1.95 µ$ → 2 µ$ (cost recorded as 2 µ$, margin the rest: 0).
    expect(priceCall(price(100_000n, 0n, 30), 15, 0).chargeMicros).toBe(2n);
  });

  it('input and output add before rounding: 0.6 µ$ + 0.6 µ$ = 1.2 µ$ → 2 µ$ total', () => {
    expect(priceCall(price(100_000n, 200_000n, 0), 6, 3)).toEqual({
      costMicros: 2n,
      marginMicros: 0n,
      chargeMicros: 2n,
    });
    expect(priceCall(price(100_000n, 200_000n, 0), 5, 2).chargeMicros).toBe(1n); // 0.5 + 0.4 = 0.9 → 1
  });

  it('stays exact beyond what a double holds', () => {
    // 1M output tokens of a $75/M model with a 1000 % markup: 7.5e13 × 1100 overflows 2^53.
    const p = priceCall(price(15_000_000n, 75_000_000n, 1000), 0, 1_000_000);
    expect(p).toEqual({ costMicros: 75_000_000n, marginMicros: 750_000_000n, chargeMicros: 825_000_000n });
    const odd = priceCall(price(15_000_000n, 75_000_000n, 37), 123_456_789, 98_765_432);
    // (123456789 × 15e6 + 98765432 × 75e6) = 9,259,259,235,000,000 → ×137 / 1e8, rounded up.
    const scaled = 123_456_789n * 15_000_000n + 98_765_432n * 75_000_000n;
    expect(odd.chargeMicros).toBe((scaled * 137n + 99_999_999n) / 100_000_000n);
    expect(odd.costMicros + odd.marginMicros).toBe(odd.chargeMicros);
  });

  it('margin is never negative and cost + margin is always the charge', () => {
    for (let markup = 0; markup <= 200; markup += 7) {
      for (let input = 0; input < 50; input += 3) {
        const p = priceCall(price(123_457n, 987_653n, markup), input, 50 - input);
        expect(p.marginMicros).toBeGreaterThanOrEqual(0n);
        expect(p.costMicros + p.marginMicros).toBe(p.chargeMicros);
      }
    }
  });

  it('refuses negative tokens and prices', () => {
    expect(() => priceCall(price(1n, 1n, 30), -1, 0)).toThrow(RangeError);
    expect(() => priceCall(price(-1n, 1n, 30), 1, 0)).toThrow(RangeError);
    expect(() => priceCall(price(1n, 1n, -5), 1, 0)).toThrow(RangeError);
  });
});

describe('affordableOutputTokens', () => {
  it('is the largest output whose charge fits the balance', () => {
    const cases: [bigint, bigint, number, number, bigint][] = [
      [3_000_000n, 15_000_000n, 30, 100, 10_000n],
      [2_500_000n, 10_000_000n, 30, 5_000, 1_000_000n],
      [150_000n, 600_000n, 0, 7, 3n],
      [100_000n, 400_000n, 1000, 1, 999n],
    ];
    for (const [inM, outM, markup, input, balance] of cases) {
      const p = price(inM, outM, markup);
      const t = affordableOutputTokens(p, input, balance);
      expect(t).toBeGreaterThanOrEqual(0);
      expect(priceCall(p, input, t).chargeMicros).toBeLessThanOrEqual(balance);
      expect(priceCall(p, input, t + 1).chargeMicros).toBeGreaterThan(balance);
    }
  });

  it('-1 when not even the input fits; Infinity for free output', () => {
    expect(affordableOutputTokens(price(3_000_000n, 15_000_000n, 30), 1_000, 100n)).toBe(-1);
    expect(affordableOutputTokens(price(3_000_000n, 15_000_000n, 30), 1, -5n)).toBe(-1);
    expect(affordableOutputTokens(price(1_000_000n, 0n, 30), 10, 1_000n)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('planReservation', () => {
  const base = {
    price: price(3_000_000n, 15_000_000n, 30),
    inputTokens: 100,
    requestedMaxTokens: undefined as number | undefined,
    modelMaxOutputTokens: 4_096,
    minOutputTokens: 16,
  };

  it('without max_tokens: holds for the model maximum when the balance allows', () => {
    const plan = planReservation({ ...base, balanceMicros: 10_000_000n });
    expect(plan).toEqual({
      ok: true,
      maxTokens: 4_096,
      reserveMicros: priceCall(base.price, 100, 4_096).chargeMicros,
      capped: false,
    });
  });

  it('a max_tokens above the model maximum is lowered to it', () => {
    const plan = planReservation({ ...base, requestedMaxTokens: 100_000, balanceMicros: 10_000_000n });
    expect(plan).toMatchObject({ ok: true, maxTokens: 4_096, capped: true });
  });

  it('caps max_tokens to what the balance affords, and the hold never exceeds the balance', () => {
    for (const balance of [1_000n, 5_000n, 33_333n, 70_000n]) {
      const plan = planReservation({ ...base, requestedMaxTokens: 4_000, balanceMicros: balance });
      if (!plan.ok) throw new Error('refused');
      expect(plan.capped).toBe(true);
      expect(plan.reserveMicros).toBeLessThanOrEqual(balance);
      expect(priceCall(base.price, 100, plan.maxTokens + 1).chargeMicros).toBeGreaterThan(balance);
    }
  });

  it('refuses when the balance cannot cover the input and the minimum output, saying what it needs', () => {
    const minimum = priceCall(base.price, 100, 16).chargeMicros;
    expect(planReservation({ ...base, balanceMicros: minimum - 1n })).toEqual({
      ok: false,
      minimumMicros: minimum,
      minOutputTokens: 16,
    });
    expect(planReservation({ ...base, balanceMicros: minimum })).toMatchObject({ ok: true, maxTokens: 16 });
    expect(planReservation({ ...base, balanceMicros: 0n }).ok).toBe(false);
    expect(planReservation({ ...base, balanceMicros: -500n }).ok).toBe(false);
  });

  it('a client asking for fewer tokens than the minimum gets exactly those', () => {
    const plan = planReservation({
      ...base,
      requestedMaxTokens: 5,
      balanceMicros: priceCall(base.price, 100, 5).chargeMicros,
    });
    expect(plan).toMatchObject({ ok: true, maxTokens: 5, capped: false });
  });

  it('a free model holds nothing and allows the model maximum', () => {
    const plan = planReservation({ ...base, price: price(0n, 0n, 30), balanceMicros: 0n });
    expect(plan).toEqual({ ok: true, maxTokens: 4_096, reserveMicros: 0n, capped: false });
  });
});

describe('token estimates', () => {
  const request = (body: Record<string, unknown>) =>
    chatRequestSchema.parse({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body });

  it('the upper bound counts one token per UTF-8 byte plus fixed overheads', () => {
    expect(inputTokensUpperBound(request({}))).toBe(2 + TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST);
    // "héllo 👋": h, é (2 bytes), l, l, o, space, 👋 (4 bytes) = 11 bytes.
    const emoji = request({ messages: [{ role: 'user', content: 'héllo 👋' }] });
    expect(inputTokensUpperBound(emoji)).toBe(11 + TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST);
  });

  it('counts every text a provider reads: system, tool calls, tool results, tools, schemas, images', () => {
    const tools = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object' } } }];
    const req = request({
      messages: [
        { role: 'system', content: 'sys' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(100_000)}` } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'result' },
      ],
      tools,
    });
    const bytes = 3 + 4 + (2 + 1 + 2) + (2 + 6) + JSON.stringify(tools).length;
    expect(inputTokensUpperBound(req)).toBe(
      bytes + 4 * TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST + TOKENS_FOR_TOOLS + TOKENS_PER_IMAGE,
    );
    // An image costs its fixed allowance, not its base64 size.
    expect(inputTokensUpperBound(req)).toBeLessThan(10_000);
  });

  it('typical counts are a third of the bytes, rounded up', () => {
    expect(typicalTokens('')).toBe(0);
    expect(typicalTokens('abc')).toBe(1);
    expect(typicalTokens('abcd')).toBe(2);
    expect(typicalInputTokens(request({}))).toBe(1 + TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST);
    expect(typicalInputTokens(request({}))).toBeLessThan(inputTokensUpperBound(request({})));
  });
});

describe('rate limit Retry-After', () => {
  it('waits for the previous minute to fade when this minute has room', () => {
    // limit 10: previous 10 at elapsed 0.5 weighs 5, current 5 → estimate 10 + 1 > 10; need previous ≤ 4 → fade
    // to weight 0.4: 6 s more.
    expect(retryAfterSeconds({ limit: 10, previous: 10, current: 5, elapsed: 0.5 })).toBe(6);
  });

  it('waits for the next minute (and for this one to fade) when this minute is full', () => {
    // limit 4, current 4 at elapsed 0.25: 45 s to the next minute, then 4 × (1 − e') + 1 ≤ 4 ⇒ e' ≥ 0.25: 15 s.
    expect(retryAfterSeconds({ limit: 4, previous: 0, current: 4, elapsed: 0.25 })).toBe(60);
    expect(retryAfterSeconds({ limit: 100, previous: 0, current: 100, elapsed: 0.99 })).toBe(2);
  });

  it('is at least one second', () => {
    expect(retryAfterSeconds({ limit: 10, previous: 1, current: 9, elapsed: 0.999 })).toBe(1);
  });
});
