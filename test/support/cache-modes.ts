import type { SessionModuleOptions } from '../../src/index.js';
import { POSTGRES_URL, type OpenDatabase, type TestDatabase } from './databases.js';

/**
 * The hardening suites run with the session cache off (the default) and on, so the 401/503/200
 * contract is proven both ways. `withCacheModes(TEST_DATABASES)` gives rows
 * `[databaseLabel, 'cache off' | 'cache on', database, cacheOn]`.
 */
export function withCacheModes<Row extends [string, TestDatabase]>(
  databases: Row[],
): [string, string, TestDatabase, boolean][] {
  return databases.flatMap(([label, database]) => [
    [label, 'cache off', database, false] as [string, string, TestDatabase, boolean],
    [label, 'cache on', database, true] as [string, string, TestDatabase, boolean],
  ]);
}

/**
 * The `cache` option for a mode: on, with a fast heartbeat, and behind PgBouncer in transaction
 * mode the listener goes straight to the server (`listenUrl`), as users must set it up.
 */
export function cacheSetting(
  cacheOn: boolean,
  database: TestDatabase,
  db: OpenDatabase,
): SessionModuleOptions['cache'] {
  if (!cacheOn) return false;
  return { heartbeatMs: 200, listenUrl: directUrl(database, db) };
}

/** The database's URL straight to the server when the suite goes through PgBouncer; else undefined. */
export function directUrl(database: TestDatabase, db: OpenDatabase): string | undefined {
  if (database.pooler === undefined || !db.url || !POSTGRES_URL) return undefined;
  const direct = new URL(POSTGRES_URL);
  direct.pathname = new URL(db.url).pathname;
  return direct.toString();
}
