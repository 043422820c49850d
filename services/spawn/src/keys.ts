import { AppError, forbidden, newId, notFound } from '@agentstack/core';
import type { Kysely } from '@agentstack/db';
import type { ComputeProvider } from './providers/provider.js';
import { InvalidPublicKeyError, parsePublicKey } from './ssh-keys.js';
import { keysSql, type SpawnDB, type SshKeyRow, uniqueViolation } from './store.js';

export function keyView(row: SshKeyRow) {
  return {
    id: row.id,
    name: row.name,
    fingerprint: row.fingerprint,
    fingerprint_md5: row.md5,
    type: row.key_type,
    public_key: row.public_key,
    created_at: row.created_at.toISOString(),
  };
}

/** Registered SSH public keys: validated, fingerprinted, one name and one fingerprint per wallet. */
export class SshKeys {
  constructor(
    private readonly db: Kysely<SpawnDB>,
    private readonly provider: ComputeProvider,
  ) {}

  async register(owner: string, input: { name: string; public_key: string }): Promise<SshKeyRow> {
    let parsed: ReturnType<typeof parsePublicKey>;
    try {
      parsed = parsePublicKey(input.public_key);
    } catch (err) {
      if (err instanceof InvalidPublicKeyError) {
        throw new AppError('invalid_request', `body.public_key: ${err.message}`, 400, { field: 'body.public_key' });
      }
      throw err;
    }
    try {
      return await keysSql.insert(this.db, {
        id: newId('key'),
        owner,
        name: input.name,
        public_key: parsed.normalized,
        fingerprint: parsed.sha256,
        md5: parsed.md5,
        key_type: parsed.type,
      });
    } catch (err) {
      const constraint = uniqueViolation(err);
      if (constraint?.includes('name')) {
        throw new AppError('conflict', `you already have an SSH key named ${input.name}`, 409, { field: 'body.name' });
      }
      if (constraint) {
        throw new AppError('conflict', `this key is already registered (${parsed.sha256})`, 409, {
          field: 'body.public_key',
        });
      }
      throw err;
    }
  }

  async get(owner: string, id: string): Promise<SshKeyRow> {
    const row = await keysSql.get(this.db, id);
    if (!row) throw notFound('SSH key');
    if (row.owner !== owner) throw forbidden('this SSH key belongs to another wallet');
    return row;
  }

  /** Deletes the key; servers already created with it keep it (as on Hetzner). */
  async delete(owner: string, id: string): Promise<SshKeyRow> {
    const row = await this.get(owner, id);
    await keysSql.delete(this.db, id);
    if ((await keysSql.countByMd5(this.db, row.md5)) === 0) {
      await this.provider.removeSshKey(row.md5).catch(() => undefined);
    }
    return row;
  }
}
