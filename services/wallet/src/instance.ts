import { randomBytes } from 'node:crypto';
import type pg from 'pg';

/**
 * Who is driving a journal entry. Each process holds a PostgreSQL session advisory lock on its own random
 * key for as long as it lives; an entry records that key while its process executes it. When the process
 * dies (even by SIGKILL) its connection closes and the lock goes with it, so "is the executor alive?" is a
 * `pg_try_advisory_lock` away, across any number of replicas, with no timeouts to tune.
 */
export class InstanceLock {
  private constructor(
    readonly key: bigint,
    private readonly client: pg.PoolClient,
    private readonly pool: pg.Pool,
  ) {}

  static async acquire(pool: pg.Pool): Promise<InstanceLock> {
    // 62 random bits, positive, so it fits PostgreSQL's bigint.
    const key = randomBytes(8).readBigUInt64BE() >> 2n;
    const client = await pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1::bigint)', [key.toString()]);
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    // Keep this connection out of the pool for good: releasing it would release the lock's meaning.
    client.on('error', () => {});
    return new InstanceLock(key, client, pool);
  }

  /** True while the process holding `key` is alive (or it is us). */
  async isAlive(key: bigint): Promise<boolean> {
    if (key === this.key) return true;
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS got', [
        key.toString(),
      ]);
      if (rows[0]?.got) {
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [key.toString()]);
        return false;
      }
      return true;
    } finally {
      client.release();
    }
  }

  async release(): Promise<void> {
    try {
      await this.client.query('SELECT pg_advisory_unlock($1::bigint)', [this.key.toString()]);
    } finally {
      this.client.release(true);
    }
  }
}
