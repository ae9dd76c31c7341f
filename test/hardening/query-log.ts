import type { DataSource, Logger as TypeOrmLogger } from 'typeorm';
import { isRefusedPreparedStatement } from '../support/prepared-lookup.js';

/**
 * A TypeORM logger (`TypeOrmModule.forRoot({ logger })`) that keeps every statement
 * and every failed statement the data source runs: the hardening suites count
 * queries per request and assert no database error. `watchPool` also catches
 * statements sent to the driver's pool directly, around TypeORM (the guard's hot
 * lookup may take that path), so no code path escapes the count.
 */
export class QueryLog implements TypeOrmLogger {
  readonly queries: string[] = [];
  readonly errors: string[] = [];
  /** Set when the pool is also TypeORM's connection (PGlite): the pool then sees every statement once. */
  private poolSeesAll = false;

  logQuery(query: string): void {
    if (!this.poolSeesAll) this.record(query);
  }
  logQueryError(error: string | Error, query: string): void {
    this.errors.push(`${error instanceof Error ? error.message : error} -- ${oneLine(query)}`);
  }
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}

  /** Also records statements run with the data source's pool `query()` (node-postgres `Pool`, PGlite's stand-in). */
  watchPool(dataSource: DataSource): void {
    const pool = (dataSource.driver as { master?: { query?: (...args: unknown[]) => unknown } }).master;
    if (!pool || typeof pool.query !== 'function') return;
    // typeorm-pglite hands TypeORM the pool itself as its connection.
    this.poolSeesAll = pool.constructor?.name === 'PGlitePool';
    const original = pool.query;
    const record = (sql: unknown) =>
      this.record(typeof sql === 'string' ? sql : String((sql as { text?: unknown })?.text));
    const recordError = (error: unknown, sql: unknown) => {
      if (isRefusedPreparedStatement(sql, error)) {
        // Retried unnamed by the package in the same call: not a statement of its own.
        this.queries.splice(this.queries.lastIndexOf(oneLine(String((sql as { text?: unknown }).text))), 1);
      } else if (!this.poolSeesAll) this.logQueryError(error as Error, String(sql));
    };
    pool.query = function (this: unknown, ...args: unknown[]) {
      record(args[0]);
      const result = original.apply(this, args);
      if (result instanceof Promise) result.catch((error: unknown) => recordError(error, args[0]));
      return result;
    };
  }

  /** Statements logged since `mark` (a previous `queries.length`). */
  since(mark: number): string[] {
    return this.queries.slice(mark);
  }

  private record(query: string): void {
    this.queries.push(oneLine(query));
  }
}

function oneLine(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim();
}
