import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** CI runs every benchmark once in this short mode so they keep working; figures come from full runs. */
export const SMOKE = process.env.BENCH_SMOKE === '1' || process.env.BENCH_SMOKE === 'true';

export interface Figure {
  label: string;
  ours: number;
  peer: number;
  unit: string;
  /** true when bigger is better (throughput), false for latency-like figures. */
  higherIsBetter: boolean;
}

export interface BenchResult {
  name: string;
  ours: string;
  peer: string;
  figures: Figure[];
  notes?: string[];
}

export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

/** Runs `task` `total` times with `concurrency` in flight; returns per-call latencies (ms) and calls/s. */
export async function load(
  task: (i: number) => Promise<void>,
  { total, concurrency }: { total: number; concurrency: number },
): Promise<{ latencies: number[]; perSecond: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        await task(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { latencies, perSecond: total / seconds };
}

/** ours / peer, oriented so that > 1 always means "ours is better". */
export function advantage(f: Figure): number {
  return f.higherIsBetter ? f.ours / f.peer : f.peer / f.ours;
}

const round = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));

export async function report(result: BenchResult): Promise<void> {
  console.log(`\n## ${result.name}: ${result.ours} vs ${result.peer}${SMOKE ? ' (smoke run)' : ''}\n`);
  console.log('| figure | ours | peer | ours/peer |');
  console.log('|---|---|---|---|');
  for (const f of result.figures) {
    console.log(
      `| ${f.label} | ${round(f.ours)} ${f.unit} | ${round(f.peer)} ${f.unit} | ${(f.ours / f.peer).toFixed(2)} |`,
    );
  }
  for (const note of result.notes ?? []) console.log(`\n${note}`);
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, `${result.name}.json`),
    JSON.stringify({ ...result, smoke: SMOKE, at: new Date().toISOString() }, null, 2),
  );
}
