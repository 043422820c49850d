import { describe, expect, it } from 'vitest';
import { advantage, load, percentile } from '../src/lib.js';

describe('bench helpers', () => {
  it('percentiles pick the nearest-rank sample', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile([5], 99)).toBe(5);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });

  it('load runs every task once with bounded concurrency', async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: number[] = [];
    const result = await load(
      async (i) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 1));
        seen.push(i);
        inFlight--;
      },
      { total: 20, concurrency: 3 },
    );
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(peak).toBe(3);
    expect(result.latencies).toHaveLength(20);
    expect(result.perSecond).toBeGreaterThan(0);
  });

  it('advantage is > 1 when ours is better, whichever way the figure points', () => {
    expect(advantage({ label: 'rps', ours: 20, peer: 10, unit: 'req/s', higherIsBetter: true })).toBe(2);
    expect(advantage({ label: 'p50', ours: 5, peer: 10, unit: 'ms', higherIsBetter: false })).toBe(2);
  });
});
