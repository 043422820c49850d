import { divCeil, formatMicros, newId } from '@agentstack/core';
import type { ModelProvider } from './db.js';
import type { ModelRow, PlatformStore } from './store.js';

/**
 * The models `pnpm db:seed` inserts, at the providers' list prices in USD per million tokens (standard
 * tier, no caching or batch discounts) as published on openai.com/api/pricing, anthropic.com/pricing and
 * ai.google.dev/pricing in June 2025 (the date of these figures; they were not re-checked from the build
 * machine, which has no internet access):
 *   gpt-4o           $2.50 in  / $10.00 out
 *   gpt-4o-mini      $0.15 in  / $0.60 out
 *   claude-sonnet-4  $3.00 in  / $15.00 out
 *   claude-opus-4    $15.00 in / $75.00 out
 *   gemini-2.0-flash $0.10 in  / $0.40 out   (text/image/video input)
 * Prices change: admins edit the models table (takes effect on the next request); the seed never overwrites.
 * Markup: 30% (the seed's example margin).
 */
export const SEED_MODELS: {
  name: string;
  displayName: string;
  provider: ModelProvider;
  upstreamModel: string;
  inputPerMillionMicros: bigint;
  outputPerMillionMicros: bigint;
  contextWindow: number;
  maxOutputTokens: number;
}[] = [
  {
    name: 'gpt-4o',
    displayName: 'GPT-4o',
    provider: 'openai',
    upstreamModel: 'gpt-4o',
    inputPerMillionMicros: 2_500_000n,
    outputPerMillionMicros: 10_000_000n,
    contextWindow: 128_000,
    maxOutputTokens: 16_384,
  },
  {
    name: 'gpt-4o-mini',
    displayName: 'GPT-4o mini',
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    inputPerMillionMicros: 150_000n,
    outputPerMillionMicros: 600_000n,
    contextWindow: 128_000,
    maxOutputTokens: 16_384,
  },
  {
    name: 'claude-sonnet-4',
    displayName: 'Claude Sonnet 4',
    provider: 'anthropic',
    upstreamModel: 'claude-sonnet-4-20250514',
    inputPerMillionMicros: 3_000_000n,
    outputPerMillionMicros: 15_000_000n,
    contextWindow: 200_000,
    maxOutputTokens: 64_000,
  },
  {
    name: 'claude-opus-4',
    displayName: 'Claude Opus 4',
    provider: 'anthropic',
    upstreamModel: 'claude-opus-4-20250514',
    inputPerMillionMicros: 15_000_000n,
    outputPerMillionMicros: 75_000_000n,
    contextWindow: 200_000,
    maxOutputTokens: 32_000,
  },
  {
    name: 'gemini-2.0-flash',
    displayName: 'Gemini 2.0 Flash',
    provider: 'google',
    upstreamModel: 'gemini-2.0-flash',
    inputPerMillionMicros: 100_000n,
    outputPerMillionMicros: 400_000n,
    contextWindow: 1_048_576,
    maxOutputTokens: 8_192,
  },
];

export const DEFAULT_MARKUP_PCT = 30;

/** Inserts the seed models that are missing; returns the names inserted. */
export async function seedModels(store: PlatformStore): Promise<string[]> {
  const inserted: string[] = [];
  for (const model of SEED_MODELS) {
    const added = await store.insertModelIfMissing({
      id: newId('mdl'),
      name: model.name,
      display_name: model.displayName,
      provider: model.provider,
      upstream_model: model.upstreamModel,
      provider_cost_input_per_m_micros: model.inputPerMillionMicros,
      provider_cost_output_per_m_micros: model.outputPerMillionMicros,
      markup_pct: DEFAULT_MARKUP_PCT,
      enabled: true,
      demo: false,
      context_window: model.contextWindow,
      max_output_tokens: model.maxOutputTokens,
    });
    if (added) inserted.push(model.name);
  }
  return inserted;
}

/** What the user pays per million tokens: provider cost plus markup, rounded up to the micro-dollar. */
export const priceWithMarkup = (costMicros: bigint, markupPct: number): bigint =>
  divCeil(costMicros * BigInt(100 + markupPct), 100n);

/** One row of the public price list (the landing page's calculator reads it). */
export function publicModel(row: ModelRow) {
  const input = priceWithMarkup(row.provider_cost_input_per_m_micros, row.markup_pct);
  const output = priceWithMarkup(row.provider_cost_output_per_m_micros, row.markup_pct);
  return {
    name: row.name,
    displayName: row.display_name,
    provider: row.provider,
    demo: row.demo,
    contextWindow: row.context_window,
    maxOutputTokens: row.max_output_tokens,
    pricing: {
      currency: 'USD',
      inputPerMillion: formatMicros(input),
      outputPerMillion: formatMicros(output),
      inputPerMillionMicros: input.toString(),
      outputPerMillionMicros: output.toString(),
    },
  };
}
