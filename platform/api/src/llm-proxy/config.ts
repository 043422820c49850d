import { env } from '@agentstack/core';
import { z } from 'zod';

/** Seconds, fractions allowed (tests use sub-second timeouts). */
const seconds = (fallback: number, min = 0) => z.coerce.number().min(min).default(fallback);
const optionalUrl = () => env.url().optional();
const optionalSecret = () =>
  z
    .string()
    .optional()
    .transform((v) => (v?.trim() ? v.trim() : undefined));

/**
 * The LLM proxy's environment (part of the platform API's config: one process serves both). Provider keys
 * and base URLs come from here only, never from tenants.
 */
export const proxyConfigShape = {
  LLM_PROXY_PORT: env.port(8090),
  LLM_PROXY_HOST: z.string().default('127.0.0.1'),
  /** Chat completions per tenant per minute (sliding window, shared by every replica through PostgreSQL). */
  LLM_PROXY_RATE_LIMIT_PER_MINUTE: env.int(100, 1),
  /** Largest request body; images arrive base64-encoded inside it. */
  LLM_PROXY_MAX_BODY_BYTES: env.int(10_000_000, 1024),
  /** A call is refused with 402 unless the balance covers its input and at least this many output tokens. */
  LLM_PROXY_MIN_OUTPUT_TOKENS: env.int(16, 1),
  /** Until a provider's response headers (streams) or its whole response (non-streaming calls). */
  LLM_PROXY_UPSTREAM_TIMEOUT_SECONDS: seconds(600, 0.05),
  /**
   * Longest silence inside a provider's stream before the call counts as failed (reasoning models can think
   * for minutes before their first token).
   */
  LLM_PROXY_STREAM_IDLE_TIMEOUT_SECONDS: seconds(300, 0.05),
  /**
   * After a streaming client disconnects, the proxy keeps reading the provider's stream (so the call is billed
   * from the provider's own usage) for at most this long, then stops it and bills an estimate of the output.
   */
  LLM_PROXY_DRAIN_TIMEOUT_SECONDS: seconds(120, 0),
  /** A hold not renewed for this long belongs to a crashed process and is released by the sweeper. */
  LLM_PROXY_RESERVATION_TTL_SECONDS: seconds(300, 0.5),
  LLM_PROXY_SWEEP_INTERVAL_SECONDS: seconds(30, 0.05),

  OPENAI_API_KEY: optionalSecret(),
  /** Default https://api.openai.com/v1; set alone (no key) for a keyless server speaking OpenAI's API. */
  OPENAI_BASE_URL: optionalUrl(),
  ANTHROPIC_API_KEY: optionalSecret(),
  /** Default https://api.anthropic.com */
  ANTHROPIC_BASE_URL: optionalUrl(),
  GEMINI_API_KEY: optionalSecret(),
  /** Read when GEMINI_API_KEY is not set (Google's own SDKs accept either name). */
  GOOGLE_API_KEY: optionalSecret(),
  /** Default https://generativelanguage.googleapis.com */
  GEMINI_BASE_URL: optionalUrl(),
  /** An OpenAI-compatible server (Ollama http://127.0.0.1:11434/v1, vLLM, LM Studio) for `openai-compatible` models. */
  OPENAI_COMPAT_BASE_URL: optionalUrl(),
  OPENAI_COMPAT_API_KEY: optionalSecret(),
  /** How that server is named in messages, e.g. "Ollama". */
  OPENAI_COMPAT_NAME: z.string().min(1).default('the OpenAI-compatible server'),
  /** The offline demo model server (`pnpm stack start --demo` sets it): serves models marked `demo`. */
  DEMO_MODEL_URL: optionalUrl(),
} as const;

export interface ProxySettings {
  rateLimitPerMinute: number;
  maxBodyBytes: number;
  minOutputTokens: number;
  upstreamTimeoutMs: number;
  streamIdleTimeoutMs: number;
  drainTimeoutMs: number;
  reservationTtlMs: number;
  sweepIntervalMs: number;
}

type ProxyRaw = z.output<z.ZodObject<typeof proxyConfigShape>>;

export function proxySettings(raw: ProxyRaw): ProxySettings {
  return {
    rateLimitPerMinute: raw.LLM_PROXY_RATE_LIMIT_PER_MINUTE,
    maxBodyBytes: raw.LLM_PROXY_MAX_BODY_BYTES,
    minOutputTokens: raw.LLM_PROXY_MIN_OUTPUT_TOKENS,
    upstreamTimeoutMs: raw.LLM_PROXY_UPSTREAM_TIMEOUT_SECONDS * 1000,
    streamIdleTimeoutMs: raw.LLM_PROXY_STREAM_IDLE_TIMEOUT_SECONDS * 1000,
    drainTimeoutMs: raw.LLM_PROXY_DRAIN_TIMEOUT_SECONDS * 1000,
    reservationTtlMs: raw.LLM_PROXY_RESERVATION_TTL_SECONDS * 1000,
    sweepIntervalMs: raw.LLM_PROXY_SWEEP_INTERVAL_SECONDS * 1000,
  };
}
