import { Injectable } from '@nestjs/common';
import { SessionStore } from './session.store.js';

/** @internal The migration a cache needs, named in the startup error when its triggers are missing. */
export const SESSION_CACHE_MIGRATION = 'AddSessionCacheTrigger1770500000000';

/** @internal The triggers `AddSessionCacheTrigger1770500000000` installs. */
const CACHE_TRIGGERS = ['nts_session_cache_update', 'nts_session_cache_delete', 'nts_session_cache_truncate'];

/** @internal A connection the listener's statements run on: a `pg.Client`, PGlite, or the data source. */
export interface Queryable {
  query(sql: string, parameters?: unknown[]): Promise<unknown>;
}

/** @internal What the listener needs to know about the table before it subscribes. */
export interface InvalidationChannel {
  /** The channel the table's triggers NOTIFY (named after its oid: two session tables never share one). */
  channel: string;
  /** Whether all of the cache's triggers are on the table. */
  triggersInstalled: boolean;
  /** The database's clock, epoch ms. */
  databaseNow: number;
}

/**
 * @internal The SQL of the cache's invalidation listener, next to the store that holds
 * every other statement. Its statements run on the listener's own connection, so they
 * take that connection as an argument.
 */
@Injectable()
export class SessionInvalidationStore {
  constructor(private readonly store: SessionStore) {}

  /** The table's channel and whether its triggers exist (the triggers derive the same name from `TG_RELID`). */
  async describe(connection: Queryable): Promise<InvalidationChannel> {
    const table = `'${this.store.tableName.replace(/'/g, "''")}'`;
    const rows = rowsOf<{ channel: string; triggers: number; now: number }>(
      await connection.query(
        `SELECT 'nts_session_cache_' || t.oid::bigint::text AS channel,
                (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = t.oid AND tgname = ANY ($1::text[])) AS triggers,
                floor(extract(epoch FROM now()) * 1000)::float8 AS "now"
         FROM (SELECT ${table}::regclass::oid AS oid) t`,
        [CACHE_TRIGGERS],
      ),
    );
    return {
      channel: rows[0].channel,
      triggersInstalled: rows[0].triggers === CACHE_TRIGGERS.length,
      databaseNow: Number(rows[0].now),
    };
  }

  /** Subscribes the connection to `channel` (a name this package made: lowercase letters, digits, `_`). */
  listen(connection: Queryable, channel: string): Promise<unknown> {
    return connection.query(`LISTEN ${channel}`);
  }

  /**
   * The listener's heartbeat: a NOTIFY to itself on `channel`, and the database's clock
   * (epoch ms), which keeps the cache's clock offset fresh at no extra round trip.
   */
  async heartbeat(connection: Queryable, channel: string, payload: string): Promise<number> {
    const rows = rowsOf<{ now: number }>(
      await connection.query(`SELECT pg_notify($1, $2), floor(extract(epoch FROM now()) * 1000)::float8 AS "now"`, [
        channel,
        payload,
      ]),
    );
    return Number(rows[0].now);
  }
}

/** pg answers `{ rows }`, TypeORM's `DataSource.query` the rows themselves. */
function rowsOf<Row>(result: unknown): Row[] {
  return (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];
}
