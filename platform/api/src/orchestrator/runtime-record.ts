import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecretBox } from '@agentstack/core';

/**
 * What a tenant's runtime needs to start again after the platform restarts. The API key exists in
 * plaintext only at create, so it is kept sealed (AES-256-GCM, the platform's secret box, the tenant id
 * as associated data so a record cannot be moved to another tenant) in `<tenant dir>/runtime.json`
 * (root only, outside the workspace). The runtime auth token is not kept: each start issues a new one.
 */
export interface RuntimeSecrets {
  apiKey: string;
  /** Extra runtime env given at create (may hold secrets, so it is sealed too). */
  env: Record<string, string>;
}

interface StoredRecord {
  version: 1;
  tenantId: string;
  sandboxId: string;
  createdAt: string;
  sealed: string;
}

export interface RuntimeRecord {
  tenantId: string;
  sandboxId: string;
  createdAt: string;
  secrets: RuntimeSecrets;
}

const FILE = 'runtime.json';
const aad = (tenantId: string) => `agentsquads:tenant-runtime:${tenantId}`;

export async function readRuntimeRecord(
  tenantDir: string,
  tenantId: string,
  box: SecretBox,
): Promise<RuntimeRecord | undefined> {
  let text: string;
  try {
    text = await readFile(join(tenantDir, FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const stored = JSON.parse(text) as StoredRecord;
  if (stored.version !== 1 || stored.tenantId !== tenantId) throw new Error(`${FILE} of ${tenantId} is not its own`);
  const secrets = JSON.parse(box.openText(stored.sealed, aad(tenantId))) as RuntimeSecrets;
  return { tenantId, sandboxId: stored.sandboxId, createdAt: stored.createdAt, secrets };
}

export async function writeRuntimeRecord(tenantDir: string, record: RuntimeRecord, box: SecretBox): Promise<void> {
  const stored: StoredRecord = {
    version: 1,
    tenantId: record.tenantId,
    sandboxId: record.sandboxId,
    createdAt: record.createdAt,
    sealed: box.seal(JSON.stringify(record.secrets), aad(record.tenantId)),
  };
  const path = join(tenantDir, FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(stored, null, 2), { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}
