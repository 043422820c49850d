import { fileURLToPath } from 'node:url';
import { env, loadConfig } from '@agentstack/core';
import { z } from 'zod';
import { bridgesSchema } from './bridges.js';

/** The Hands shipped with the repository (`data/hands/` at the repo root). */
export const DEFAULT_HANDS_DIR = fileURLToPath(new URL('../../../data/hands', import.meta.url));

const proxyUrl = () => z.url({ protocol: /^https?$/, message: 'expected an http:// proxy URL' }).optional();

export const runtimeConfigSchema = z.object({
  TENANT_ID: env.string(),
  /** The platform API, for tools that act on the tenant's account. */
  PLATFORM_API_URL: env.url(),
  /** The tenant's API key: Bearer for the LLM proxy and for platform calls. */
  PLATFORM_API_KEY: env.string(),
  /** OpenAI-compatible base URL of the LLM proxy (`/v1` is added when the URL has no path). */
  LLM_PROXY_URL: env.url(),
  /** Reach the LLM proxy over this unix socket instead of TCP (the URL still gives the path and Host). */
  LLM_PROXY_SOCKET: z.string().min(1).optional(),
  /** The secret the platform presents (`Authorization: Bearer …`) on every route but /health. */
  RUNTIME_AUTH_TOKEN: z.string().min(16, 'at least 16 characters'),
  RUNTIME_PORT: env.port(4200),
  RUNTIME_HOST: z.string().min(1).default('127.0.0.1'),
  /** Listen on this unix socket path instead of RUNTIME_HOST:RUNTIME_PORT. */
  RUNTIME_SOCKET: z.string().min(1).optional(),
  /** Loopback ports inside the tenant bridged to sockets the platform handed in (see bridges.ts). */
  RUNTIME_BRIDGES: bridgesSchema,
  WORKSPACE_DIR: z.string().min(1).default('/workspace'),
  HANDS_DIR: z.string().min(1).default(DEFAULT_HANDS_DIR),
  RUNTIME_DEFAULT_HAND: z.string().min(1).default('assistant'),
  RUNTIME_DEFAULT_MODEL: z.string().min(1).default('gpt-4o-mini'),
  /** Runs at once (each conversation runs one at a time); more are refused with 429. */
  RUNTIME_MAX_CONCURRENT_RUNS: env.int(4, 1),
  /** Retries of a failed LLM call before it starts streaming (429/5xx/connection errors). */
  RUNTIME_LLM_MAX_RETRIES: env.int(2, 0),
  HTTP_PROXY: proxyUrl(),
  HTTPS_PROXY: proxyUrl(),
  NO_PROXY: z.string().optional(),
  http_proxy: proxyUrl(),
  https_proxy: proxyUrl(),
  no_proxy: z.string().optional(),
  LOG_LEVEL: env.logLevel(),
});

export type RuntimeConfig = z.infer<typeof runtimeConfigSchema>;

export const loadRuntimeConfig = (source: Record<string, string | undefined> = process.env) =>
  loadConfig(runtimeConfigSchema, source);

/** The OpenAI SDK's base URL: the proxy URL, with `/v1` when it was given as a bare origin. */
export function llmBaseUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = '/v1';
  return parsed.href.replace(/\/$/, '');
}

/** Variables a shell command must not see: the runtime's own credentials. */
export const SECRET_ENV = ['RUNTIME_AUTH_TOKEN', 'PLATFORM_API_KEY'];

/** The environment for child processes: everything the runtime got, minus its secrets. */
export function childEnv(source: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(source)) {
    if (v !== undefined && !SECRET_ENV.includes(k)) out[k] = v;
  }
  return out;
}
