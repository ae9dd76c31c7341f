import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DataSourceOptions } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';

/**
 * The real databases every suite runs on: embedded PGlite always, and the
 * PostgreSQL server at DATABASE_URL when it is set (required under CI=true).
 * Each `open()` gives a fresh, empty database, so spec files run in any order.
 */
export interface TestDatabase {
  /** 'postgres' or 'pglite', for test titles. */
  readonly kind: 'postgres' | 'pglite';
  /** Set when connections go through a pooler (PgBouncer, transaction mode) instead of straight to the server. */
  readonly pooler?: 'pgbouncer';
  /** Creates an empty database and returns TypeORM options pointing at it. */
  open(): Promise<OpenDatabase>;
}

export interface OpenDatabase {
  /** Options to spread into `TypeOrmModule.forRoot` / `new DataSource`. */
  readonly options: DataSourceOptions;
  /** Connection string of the database (PostgreSQL only). */
  readonly url: string | null;
  /** Drops the database (PostgreSQL) — call after every DataSource on it is destroyed. */
  dispose(): Promise<void>;
}

export const POSTGRES_URL = process.env.DATABASE_URL ?? null;

if (process.env.CI === 'true' && !POSTGRES_URL) {
  throw new Error('CI=true but DATABASE_URL is not set: the real-PostgreSQL tests must not be skipped.');
}

/**
 * PgBouncer in transaction pooling mode in front of DATABASE_URL, started by the
 * jest global setup (test/support/pgbouncer.ts) when `pgbouncer` is installed.
 */
export const PGBOUNCER_URL = process.env.PGBOUNCER_URL ?? null;

if (process.env.CI === 'true' && POSTGRES_URL && !PGBOUNCER_URL) {
  throw new Error('CI=true but PGBOUNCER_URL is not set: the runs through PgBouncer must not be skipped.');
}

const pglite: TestDatabase = {
  kind: 'pglite',
  async open() {
    // typeorm-pglite keeps one in-memory instance per module registry, closed (and so
    // emptied) when the DataSource using it is destroyed.
    return {
      options: { type: 'postgres', driver: new PGliteDriver().driver },
      url: null,
      dispose: async () => undefined,
    };
  },
};

/**
 * A PostgreSQL server reachable at `serverUrl`; each open() creates a new database on
 * it. With `poolerUrl` (a PgBouncer in front of that server) the database is created
 * and dropped on the server directly, and the app connects through the pooler.
 */
export function postgresAt(serverUrl: string, poolerUrl?: string): TestDatabase {
  return {
    kind: 'postgres',
    ...(poolerUrl ? { pooler: 'pgbouncer' as const } : {}),
    async open() {
      const name = `nts_${randomBytes(6).toString('hex')}`;
      await withAdminClient(serverUrl, (client) => client.query(`CREATE DATABASE ${name}`));
      const url = new URL(poolerUrl ?? serverUrl);
      url.pathname = `/${name}`;
      return {
        options: { type: 'postgres', url: url.toString() },
        url: url.toString(),
        dispose: async () => {
          await withAdminClient(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
        },
      };
    },
  };
}

async function withAdminClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The databases to run on, for `describe.each(TEST_DATABASES)('... on %s', ...)`. */
export const TEST_DATABASES: [string, TestDatabase][] = [
  ['pglite', pglite],
  ...(POSTGRES_URL ? [['postgres', postgresAt(POSTGRES_URL)] as [string, TestDatabase]] : []),
  ...(POSTGRES_URL && PGBOUNCER_URL
    ? [['pgbouncer', postgresAt(POSTGRES_URL, PGBOUNCER_URL)] as [string, TestDatabase]]
    : []),
];

/** Only the PostgreSQL server, directly and through PgBouncer (for multi-connection cases PGlite cannot host). */
export const POSTGRES_ONLY: [string, TestDatabase][] = TEST_DATABASES.filter(([, db]) => db.kind === 'postgres');

/** Only the PostgreSQL server itself, not through PgBouncer (for tests that stop it, kill its backends, or package the app). */
export const POSTGRES_DIRECT: [string, TestDatabase][] = POSTGRES_ONLY.filter(([, db]) => db.pooler === undefined);

/**
 * Ends a test's own `pg.Pool` before its database is disposed. pg-pool's `end()` resolves
 * before its clients' sockets have closed, so `dispose()` (`DROP DATABASE … WITH (FORCE)`)
 * can still reach one; the pool would re-emit that client's "terminating connection" as an
 * `error` event, unhandled once nothing listens. The pool is done, so that is ignored.
 */
export async function endPool(pool: pg.Pool | undefined): Promise<void> {
  if (!pool) return;
  pool.on('error', () => undefined);
  await pool.end();
}
