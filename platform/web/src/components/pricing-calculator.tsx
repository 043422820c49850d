'use client';

import { useMemo, useState } from 'react';
import { estimateCostMicros, formatDollars, type ModelPrice } from '@/lib/money';

const PRESETS = [
  { label: 'Quick question', input: 1_500, output: 400 },
  { label: 'Coding task', input: 20_000, output: 4_000 },
  { label: 'Research report', input: 120_000, output: 12_000 },
];

const numberClass =
  'w-full rounded-lg border border-line bg-surface-2 px-3 py-2 text-ink focus:border-accent focus:outline-none';

/** Model × tokens → what it costs, from the live price list (markup included, rounded up like billing). */
export function PricingCalculator({ models }: { models: ModelPrice[] }) {
  const [modelName, setModelName] = useState(
    (models.find((m) => m.name === 'gpt-4o-mini') ?? models.find((m) => !m.demo) ?? models[0])?.name ?? '',
  );
  const [input, setInput] = useState(20_000);
  const [output, setOutput] = useState(4_000);
  const [runs, setRuns] = useState(10);
  const model = models.find((m) => m.name === modelName);
  const perRun = useMemo(() => (model ? estimateCostMicros(model, input, output) : 0n), [model, input, output]);

  if (models.length === 0) {
    return (
      <p className="rounded-xl border border-line bg-surface p-6 text-muted" data-testid="pricing-unavailable">
        Prices are not available right now. Please check back in a minute.
      </p>
    );
  }

  const toInt = (value: string) => Math.min(10_000_000, Math.max(0, Math.floor(Number(value) || 0)));

  return (
    <div
      className="grid gap-6 rounded-2xl border border-line bg-surface p-5 sm:p-6 lg:grid-cols-[1.2fr_1fr]"
      data-testid="pricing-calculator"
    >
      <div className="space-y-4">
        <label className="block space-y-1.5">
          <span className="text-sm text-muted">Model</span>
          <select
            value={modelName}
            onChange={(e) => setModelName(e.target.value)}
            className={numberClass}
            aria-label="Model"
            data-testid="pricing-model"
          >
            {models.map((m) => (
              <option key={m.name} value={m.name}>
                {m.displayName}
                {m.demo ? ' (offline demo)' : ''}
              </option>
            ))}
          </select>
        </label>
        <div className="flex flex-wrap gap-2">
          {PRESETS.map((p) => (
            <button
              key={p.label}
              type="button"
              onClick={() => {
                setInput(p.input);
                setOutput(p.output);
              }}
              className="rounded-full border border-line px-3 py-1 text-xs text-muted hover:border-accent hover:text-ink"
            >
              {p.label}
            </button>
          ))}
        </div>
        <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
          <label className="block space-y-1.5">
            <span className="text-sm text-muted">Input tokens</span>
            <input
              type="number"
              min={0}
              value={input}
              onChange={(e) => setInput(toInt(e.target.value))}
              className={numberClass}
              data-testid="pricing-input"
            />
          </label>
          <label className="block space-y-1.5">
            <span className="text-sm text-muted">Output tokens</span>
            <input
              type="number"
              min={0}
              value={output}
              onChange={(e) => setOutput(toInt(e.target.value))}
              className={numberClass}
              data-testid="pricing-output"
            />
          </label>
          <label className="block space-y-1.5">
            <span className="text-sm text-muted">Tasks a month</span>
            <input
              type="number"
              min={0}
              value={runs}
              onChange={(e) => setRuns(toInt(e.target.value))}
              className={numberClass}
            />
          </label>
        </div>
      </div>
      <div className="flex flex-col justify-between gap-4 rounded-xl bg-surface-2 p-5">
        <div>
          <p className="text-sm text-muted">Estimated cost per task</p>
          <p className="mt-1 text-3xl font-semibold text-ink" data-testid="pricing-estimate">
            {formatDollars(perRun)}
          </p>
          <p className="mt-3 text-sm text-muted">
            {runs} tasks a month ≈ <span className="text-ink">{formatDollars(perRun * BigInt(runs))}</span>
          </p>
        </div>
        {model ? (
          <p className="text-xs text-muted">
            {model.displayName}: {formatDollars(model.pricing.inputPerMillionMicros)} per million input tokens,{' '}
            {formatDollars(model.pricing.outputPerMillionMicros)} per million output tokens. You pay for the tokens the
            model reports, to the micro-dollar; no subscription.
          </p>
        ) : null}
      </div>
    </div>
  );
}
