import type { Clock, Logger, SafeFetch } from '@agentstack/core';
import type { WebhookOutbox } from '@agentstack/webhooks';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { ChainGateway } from './chain.js';
import type { Prices } from './config.js';
import type { WalletDB } from './db.js';
import type { InstanceLock } from './instance.js';
import type { KeyVault } from './keys.js';

/** Points a test can stop at (test-only; `WALLET_TEST_PAUSE_AT` maps to these in a real process). */
export interface TestHooks {
  afterIntent?: (entryId: string) => Promise<void>;
  afterSubmit?: (entryId: string) => Promise<void>;
  /** Runs before a swap re-checks its quote (a test moves the price here: the service refuses to submit). */
  beforeSwapQuote?: () => Promise<void>;
  /** Runs after a swap was signed and recorded, before it is sent (a test moves the price: the chain refuses). */
  beforeSwapSend?: () => Promise<void>;
}

/** Sends notification email (relay.sh in production; anything with this shape in tests). */
export interface Mailer {
  send(message: { to: string; subject: string; text: string; idempotencyKey?: string }): Promise<{ id?: string }>;
}

export interface WalletSettings {
  network: string;
  chainName: string;
  payTo: `0x${string}`;
  prices: Prices;
  breakerThreshold: number;
  killSwitchFromEnv: boolean;
  operatorToken?: string;
  claimTokenTtlSeconds: number;
  fundRequestTtlSeconds: number;
  swapDeadlineSeconds: number;
  confirmTimeoutMs: number;
  createLimit: number;
  createWindowSeconds: number;
  trustProxy: boolean;
  payTimeoutMs: number;
  payMaxResponseBytes: number;
}

/** Everything the domain modules share, passed in (never imported as globals). */
export interface Ctx {
  db: Kysely<WalletDB>;
  pool: pg.Pool;
  gateway: ChainGateway;
  keys: KeyVault;
  clock: Clock;
  log: Logger;
  settings: WalletSettings;
  outbox: WebhookOutbox;
  instance: InstanceLock;
  /** Fetch for `pay`: public destinations only (plus the operator's allow-list). */
  payFetch: SafeFetch;
  mailer?: Mailer;
  hooks: TestHooks;
  /** Seals values kept for a while (the create route's idempotent response). */
  seal(plaintext: string, aad: string): string;
  open(sealed: string, aad: string): string;
}
