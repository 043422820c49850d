import { fileURLToPath } from 'node:url';

/** Where the SQL this package needs lives; each service applies it with its own migrations. */
export const x402MigrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

export interface IdempotencyScope {
  payer: string;
  route: string;
  key: string;
  /** Hash of method, path and body: the same key with a different request is refused. */
  requestHash: string;
}

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type IdempotencyBegin =
  | { kind: 'started' }
  | { kind: 'replay'; response: StoredResponse }
  | { kind: 'in_progress' }
  | { kind: 'mismatch' };

/** What the payment gate remembers between requests. PostgreSQL in services; memory for tools and benches. */
export interface X402Store {
  beginIdempotent(scope: IdempotencyScope, leaseMs: number): Promise<IdempotencyBegin>;
  completeIdempotent(scope: IdempotencyScope, response: StoredResponse): Promise<void>;
  abandonIdempotent(scope: IdempotencyScope): Promise<void>;
  /** True if this payment authorization was not in use; false if another request holds it. */
  claimPayment(id: string, expiresAt: Date): Promise<boolean>;
  releasePayment(id: string): Promise<void>;
  /** True the first time a signature is seen inside its validity window. */
  claimSignature(signatureHash: string, expiresAt: Date): Promise<boolean>;
}

/** Anything with pg's `query` (a `pg.Pool`, a client). */
export interface Queryable {
  // biome-ignore lint/suspicious/noExplicitAny: rows are read field by field below.
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

export class PgX402Store implements X402Store {
  constructor(private readonly db: Queryable) {}

  async beginIdempotent(scope: IdempotencyScope, leaseMs: number): Promise<IdempotencyBegin> {
    // Insert, or take over an abandoned in-progress row whose lease ran out (its process died).
    const taken = await this.db.query(
      `INSERT INTO x402_idempotency (payer, route, key, request_hash, state, locked_until)
       VALUES ($1, $2, $3, $4, 'in_progress', now() + ($5 || ' milliseconds')::interval)
       ON CONFLICT (payer, route, key) DO UPDATE SET locked_until = EXCLUDED.locked_until
         WHERE x402_idempotency.state = 'in_progress'
           AND x402_idempotency.locked_until < now()
           AND x402_idempotency.request_hash = EXCLUDED.request_hash
       RETURNING key`,
      [scope.payer, scope.route, scope.key, scope.requestHash, String(leaseMs)],
    );
    if (taken.rows.length > 0) return { kind: 'started' };
    const existing = await this.db.query(
      `SELECT request_hash, state, status, headers, body FROM x402_idempotency
       WHERE payer = $1 AND route = $2 AND key = $3`,
      [scope.payer, scope.route, scope.key],
    );
    const row = existing.rows[0];
    if (!row) return this.beginIdempotent(scope, leaseMs); // abandoned and deleted meanwhile: try again
    if (row.request_hash !== scope.requestHash) return { kind: 'mismatch' };
    if (row.state === 'completed') {
      return { kind: 'replay', response: { status: row.status, headers: row.headers ?? {}, body: row.body ?? '' } };
    }
    return { kind: 'in_progress' };
  }

  async completeIdempotent(scope: IdempotencyScope, response: StoredResponse): Promise<void> {
    await this.db.query(
      `UPDATE x402_idempotency SET state = 'completed', status = $4, headers = $5, body = $6, completed_at = now()
       WHERE payer = $1 AND route = $2 AND key = $3`,
      [scope.payer, scope.route, scope.key, response.status, JSON.stringify(response.headers), response.body],
    );
  }

  async abandonIdempotent(scope: IdempotencyScope): Promise<void> {
    await this.db.query(
      `DELETE FROM x402_idempotency WHERE payer = $1 AND route = $2 AND key = $3 AND state = 'in_progress'`,
      [scope.payer, scope.route, scope.key],
    );
  }

  async claimPayment(id: string, expiresAt: Date): Promise<boolean> {
    const result = await this.db.query(
      `INSERT INTO x402_payment_claims (id, expires_at) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE x402_payment_claims.expires_at < now()
       RETURNING id`,
      [id, expiresAt],
    );
    return result.rows.length > 0;
  }

  async releasePayment(id: string): Promise<void> {
    await this.db.query('DELETE FROM x402_payment_claims WHERE id = $1', [id]);
  }

  async claimSignature(signatureHash: string, expiresAt: Date): Promise<boolean> {
    const result = await this.db.query(
      `INSERT INTO x402_signed_requests (signature_hash, expires_at) VALUES ($1, $2)
       ON CONFLICT (signature_hash) DO NOTHING RETURNING signature_hash`,
      [signatureHash, expiresAt],
    );
    if (Math.random() < 0.01) {
      // Occasional cleanup keeps the table small without a separate sweeper.
      await this.db.query('DELETE FROM x402_signed_requests WHERE expires_at < now()');
    }
    return result.rows.length > 0;
  }
}

/** In-memory store for single-process tools, benchmarks and the facilitator's own tests. */
export class MemoryX402Store implements X402Store {
  private readonly idempotency = new Map<string, { hash: string; response?: StoredResponse; lockedUntil: number }>();
  private readonly payments = new Map<string, number>();
  private readonly signatures = new Map<string, number>();

  private keyOf(scope: IdempotencyScope) {
    return JSON.stringify([scope.payer, scope.route, scope.key]);
  }

  async beginIdempotent(scope: IdempotencyScope, leaseMs: number): Promise<IdempotencyBegin> {
    const key = this.keyOf(scope);
    const row = this.idempotency.get(key);
    if (!row || (!row.response && row.lockedUntil < Date.now() && row.hash === scope.requestHash)) {
      this.idempotency.set(key, { hash: scope.requestHash, lockedUntil: Date.now() + leaseMs });
      return { kind: 'started' };
    }
    if (row.hash !== scope.requestHash) return { kind: 'mismatch' };
    return row.response ? { kind: 'replay', response: row.response } : { kind: 'in_progress' };
  }
  async completeIdempotent(scope: IdempotencyScope, response: StoredResponse): Promise<void> {
    const row = this.idempotency.get(this.keyOf(scope));
    if (row) row.response = response;
  }
  async abandonIdempotent(scope: IdempotencyScope): Promise<void> {
    const key = this.keyOf(scope);
    if (!this.idempotency.get(key)?.response) this.idempotency.delete(key);
  }
  async claimPayment(id: string, expiresAt: Date): Promise<boolean> {
    const held = this.payments.get(id);
    if (held !== undefined && held > Date.now()) return false;
    this.payments.set(id, expiresAt.getTime());
    return true;
  }
  async releasePayment(id: string): Promise<void> {
    this.payments.delete(id);
  }
  async claimSignature(signatureHash: string, expiresAt: Date): Promise<boolean> {
    const held = this.signatures.get(signatureHash);
    if (held !== undefined && held > Date.now()) return false;
    this.signatures.set(signatureHash, expiresAt.getTime());
    return true;
  }
}
