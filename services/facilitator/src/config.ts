import { CHAIN_NAMES } from '@agentstack/chain';
import { env, loadConfig } from '@agentstack/core';
import { z } from 'zod';

export const facilitatorConfigSchema = z.object({
  FACILITATOR_PORT: env.port(4020),
  FACILITATOR_HOST: z.string().default('127.0.0.1'),
  CHAIN: z.enum(CHAIN_NAMES).default('devnet'),
  BASE_RPC_URL: z.url().optional(),
  /** Key of the account that submits settlements and pays their gas. On the devnet: anvil's well-known gas account. */
  FACILITATOR_PRIVATE_KEY: env.hexKey(32).optional(),
  LOG_LEVEL: env.logLevel(),
});

export type FacilitatorConfig = z.infer<typeof facilitatorConfigSchema>;

export const loadFacilitatorConfig = (source: Record<string, string | undefined> = process.env) =>
  loadConfig(facilitatorConfigSchema, source);
