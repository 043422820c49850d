import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';

/** A `NNN_name.sql` file of a migrations directory. */
export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  checksum: string;
  sql: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  file: string;
  checksum: string;
  ms: number;
}

interface InfoLogger {
  info(obj: object, msg?: string): void;
}

export interface MigrateOptions {
  /** A pool to borrow one connection from, or a URL to open one connection to. */
  pool?: pg.Pool;
  connectionString?: string;
  dir: string;
  /** Where the applied versions are recorded (default `schema_migrations`). */
  table?: string;
  log?: InfoLogger;
}

const FILE_NAME = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Reads a migrations directory in version order; a stray `.sql` name or a repeated version is an error. */
export async function readMigrations(dir: string): Promise<MigrationFile[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql'));
  const migrations: MigrationFile[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (!match) throw new Error(`${join(dir, file)} is not named NNN_name.sql`);
    const bytes = await readFile(join(dir, file));
    migrations.push({
      version: Number(match[1]),
      name: match[2]!,
      file,
      checksum: createHash('sha256').update(bytes).digest('hex'),
      sql: bytes.toString('utf8'),
    });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new Error(`${migrations[i - 1]!.file} and ${migrations[i]!.file} have the same version in ${dir}`);
    }
  }
  return migrations;
}

/** A stable 64-bit advisory lock key per migrations table, so unrelated locks in the database never collide. */
function lockKey(table: string): string {
  return createHash('sha256').update(`agentstack:migrate:${table}`).digest().readBigInt64BE(0).toString();
}

/**
 * Applies the pending migrations of `dir` in version order, each in its own transaction with its record.
 * Safe to run from several processes at once: the whole run holds a session-level advisory lock, so a
 * second runner waits, then finds nothing left to do. Before applying anything, checks that every recorded
 * migration still has its file, unchanged. Returns what this call applied.
 */
export async function migrate({
  pool,
  connectionString,
  dir,
  table = 'schema_migrations',
  log,
}: MigrateOptions): Promise<AppliedMigration[]> {
  if (!IDENTIFIER.test(table))
    throw new Error(`migrations table name ${JSON.stringify(table)} is not a plain identifier`);
  const migrations = await readMigrations(dir);
  const client = await connect(pool, connectionString);
  let broken: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [lockKey(table)]);
    try {
      return await applyPending(client, table, dir, migrations, log);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey(table)]).catch((err: Error) => {
        // A dead connection has released its session lock already; don't keep it in a pool.
        broken = err;
      });
    }
  } finally {
    await client.release(broken);
  }
}

interface Connection {
  query: pg.ClientBase['query'];
  release(err?: Error): Promise<void>;
}

async function connect(pool: pg.Pool | undefined, connectionString: string | undefined): Promise<Connection> {
  if (pool) {
    const client = await pool.connect();
    return {
      query: client.query.bind(client) as pg.ClientBase['query'],
      release: async (err) => client.release(err ?? false),
    };
  }
  if (!connectionString) throw new Error('migrate needs a pool or a connectionString');
  const client = new pg.Client({ connectionString, application_name: 'migrate' });
  client.on('error', () => {}); // surfaced by the failing query instead
  await client.connect();
  return {
    query: client.query.bind(client) as pg.ClientBase['query'],
    release: () => client.end(),
  };
}

async function applyPending(
  client: Connection,
  table: string,
  dir: string,
  migrations: MigrationFile[],
  log: InfoLogger | undefined,
): Promise<AppliedMigration[]> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${table} (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const { rows: recorded } = await client.query<{ version: number; name: string; checksum: string }>(
    `SELECT version, name, checksum FROM ${table} ORDER BY version`,
  );

  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  for (const row of recorded) {
    const file = byVersion.get(row.version);
    const recordedAs = `version ${row.version} (${row.name})`;
    if (!file) throw new Error(`migration ${recordedAs} was applied but its file is missing from ${dir}`);
    if (file.name !== row.name) {
      throw new Error(
        `migration ${recordedAs} was applied, but the file for version ${row.version} is now ${file.file}`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new Error(
        `migration ${file.file} was edited after it was applied (checksum ${row.checksum.slice(0, 12)}… when applied, ` +
          `${file.checksum.slice(0, 12)}… now); add a new migration instead`,
      );
    }
  }
  const newest = recorded.at(-1);
  const pending = migrations.filter((m) => !recorded.some((r) => r.version === m.version));
  const late = newest && pending.find((m) => m.version < newest.version);
  if (late) {
    throw new Error(
      `migration ${late.file} is numbered before ${byVersion.get(newest.version)!.file}, which is already applied; renumber it`,
    );
  }

  const applied: AppliedMigration[] = [];
  for (const migration of pending) {
    const started = performance.now();
    await client.query('BEGIN');
    try {
      // No parameters: the simple query protocol runs a file of several statements.
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${table} (version, name, checksum) VALUES ($1, $2, $3)`, [
        migration.version,
        migration.name,
        migration.checksum,
      ]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw migrationError(migration, err);
    }
    const ms = Math.round(performance.now() - started);
    applied.push({
      version: migration.version,
      name: migration.name,
      file: migration.file,
      checksum: migration.checksum,
      ms,
    });
    log?.info({ migration: migration.file, ms }, 'migration applied');
  }
  return applied;
}

/** Names the file, the line and PostgreSQL's own message, so a failure reads like a compiler error. */
function migrationError(migration: MigrationFile, err: unknown): Error {
  const pgError = err as Partial<pg.DatabaseError> & Error;
  const position = Number(pgError.position);
  const line = position > 0 ? ` (line ${migration.sql.slice(0, position - 1).split('\n').length})` : '';
  const code = pgError.code ? ` [${pgError.code}]` : '';
  return new Error(`migration ${migration.file} failed${line}: ${pgError.message}${code}; nothing of it was applied`, {
    cause: err,
  });
}

/** Migrates several databases (e.g. one per service); an error names the database it came from. */
export async function migrateAll(
  targets: { name: string; connectionString: string; dir: string }[],
  { log }: { log?: InfoLogger } = {},
): Promise<Record<string, AppliedMigration[]>> {
  const results = await Promise.all(
    targets.map(async ({ name, connectionString, dir }) => {
      try {
        return [name, await migrate({ connectionString, dir, log })] as const;
      } catch (err) {
        throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
      }
    }),
  );
  return Object.fromEntries(results);
}
