import { type IsolationLevel, Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';

export type { ColumnType, Generated, Insertable, Selectable, Transaction, Updateable } from 'kysely';
export { Kysely, sql } from 'kysely';

const OID = {
  int8: 20,
  int8Array: 1016,
  numeric: 1700,
  numericArray: 1231,
  date: 1082,
  dateArray: 1182,
  textArray: 1009,
} as const;

// pg's typing only admits the scalar OIDs it names; array OIDs are just as valid at runtime.
const defaultParser = pg.types.getTypeParser as (oid: number, format: 'text' | 'binary') => (value: string) => unknown;

type NestedArray<T> = (T | null | NestedArray<T>)[];
const mapNested = <T>(value: NestedArray<string>, fn: (s: string) => T): NestedArray<T> =>
  value.map((v) => (v === null ? null : Array.isArray(v) ? mapNested(v, fn) : fn(v)));

/**
 * How this project reads PostgreSQL values:
 * - `int8`/`bigint` → `bigint`: money is integers in the smallest unit and exceeds 2^53 (µ$, USDC atomic units).
 * - `numeric` → `string`: never a float; convert explicitly where a decimal is meant.
 * - `date` → `'YYYY-MM-DD'`: pg's default makes a Date at *local* midnight, a classic off-by-one-day bug.
 * - timestamps stay `Date` (timestamptz is an instant).
 * Passed per pool rather than set on pg's global registry, so importing this module changes nothing else.
 */
export const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (format === 'binary') return defaultParser(oid, format);
    const textArray = defaultParser(OID.textArray, 'text') as (v: string) => NestedArray<string>;
    switch (oid) {
      case OID.int8:
        return (v: string) => BigInt(v);
      case OID.int8Array:
        return (v: string) => mapNested(textArray(v), BigInt);
      case OID.numeric:
      case OID.date:
        return (v: string) => v;
      case OID.numericArray:
      case OID.dateArray:
        return textArray;
      default:
        return defaultParser(oid, 'text');
    }
  }) as pg.CustomTypesConfig['getTypeParser'],
};

interface WarnLogger {
  warn(obj: object, msg?: string): void;
}

export interface DatabaseOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
  /** Shown in `pg_stat_activity`, which makes "who holds this lock" answerable. */
  applicationName?: string;
  /** Where errors of idle pooled connections go (e.g. the server restarted); they are not fatal. */
  log?: WarnLogger;
}

export interface Database<DB> {
  pool: pg.Pool;
  db: Kysely<DB>;
  /** Ends every connection; safe to call twice. */
  close(): Promise<void>;
}

/** A pg pool and a Kysely instance over it, reading values the way the project expects (see `typeParsers`). */
export function createDatabase<DB>({
  connectionString,
  max = 10,
  applicationName,
  log,
}: DatabaseOptions): Database<DB> {
  const pool = new pg.Pool({
    connectionString,
    max,
    types: typeParsers,
    ...(applicationName ? { application_name: applicationName } : {}),
  });
  // Without a listener, an idle client's error (server restart, terminated backend) crashes the process.
  pool.on('error', (err) => log?.warn({ err }, 'idle database connection failed'));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  let closing: Promise<void> | undefined;
  return {
    pool,
    db,
    close: () => {
      // Kysely's destroy ends the pool; ending a pg pool twice throws.
      closing ??= db.destroy();
      return closing;
    },
  };
}

/** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
export function withTransaction<DB, T>(
  db: Kysely<DB>,
  fn: (trx: Transaction<DB>) => Promise<T>,
  { isolation }: { isolation?: IsolationLevel } = {},
): Promise<T> {
  const builder = db.transaction();
  return (isolation ? builder.setIsolationLevel(isolation) : builder).execute(fn);
}
