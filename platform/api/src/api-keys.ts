import { createHash } from 'node:crypto';
import { newId, randomToken } from '@agentstack/core';
import type { Executor, TenantStatus } from './db.js';
import { PlatformStore } from './store.js';

/**
 * Tenant API keys: what a tenant's runtime presents to the LLM proxy (`Authorization: Bearer sk-asq-…`)
 * and exchanges for short-lived service tokens. 43 base62 characters ≈ 256 bits of randomness.
 */
export const API_KEY_PREFIX = 'sk-asq-';
const API_KEY_SHAPE = /^sk-asq-[0-9A-Za-z]{43}$/;
export const RUNTIME_KEY_LABEL = 'runtime';
/** last_used_at is a hint for people, not an audit log: write it at most this often per key. */
const TOUCH_EVERY_MS = 60_000;

export const generateApiKey = (): string => `${API_KEY_PREFIX}${randomToken(43)}`;
export const hashApiKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');
export const looksLikeApiKey = (value: string): boolean => value.startsWith(API_KEY_PREFIX);

/**
 * Issues a new key for the tenant and revokes the previous live one of the same label, in the caller's
 * transaction. Returns the plaintext: the only time it exists. Used at sign-up, and by the orchestrator
 * whenever it (re)creates a runtime and no longer holds the key (restart, lost plaintext, suspected leak).
 */
export async function issueApiKey(store: PlatformStore, tenantId: string, label = RUNTIME_KEY_LABEL): Promise<string> {
  const key = generateApiKey();
  await store.revokeApiKeys(tenantId, label);
  await store.insertApiKey({
    id: newId('key'),
    tenantId,
    hash: hashApiKey(key),
    prefix: key.slice(0, API_KEY_PREFIX.length + 6),
    label,
  });
  return key;
}

export interface ApiKeyIdentity {
  keyId: string;
  tenantId: string;
  userId: string;
  /** The proxy refuses `suspended`; `paused` means out of credits. */
  status: TenantStatus;
}

/** The tenant behind a presented key, or undefined for a malformed, unknown or revoked key. */
export async function authenticateApiKey(store: PlatformStore, presented: string): Promise<ApiKeyIdentity | undefined> {
  if (!API_KEY_SHAPE.test(presented)) return undefined;
  const found = await store.findLiveApiKeyByHash(hashApiKey(presented));
  if (!found) return undefined;
  if (!found.lastUsedAt || Date.now() - found.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
    await store.touchApiKey(found.keyId);
  }
  return { keyId: found.keyId, tenantId: found.tenantId, userId: found.userId, status: found.status };
}

/** `issueApiKey` in its own transaction: what the orchestrator calls to get a fresh key for a runtime. */
export function rotateApiKey(db: Executor, tenantId: string, label = RUNTIME_KEY_LABEL): Promise<string> {
  return db.transaction().execute((trx) => issueApiKey(new PlatformStore(trx), tenantId, label));
}
