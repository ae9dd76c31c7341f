import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { databaseErrorCode, describeDatabaseError } from './errors.js';
import { SESSION_DATA_SOURCE, SESSION_OPTIONS } from './session.constants.js';
import { Session } from './session.entity.js';
import type { ResolvedSessionOptions } from './session.options.js';

/** @internal A row as the queries below return it. */
export interface SessionRow {
  id: string;
  user: string;
  created: Date;
  expires: Date;
  authenticatedAt: Date;
  userAgent?: string | null;
  ip?: string | null;
  lastSeen?: Date | null;
  deviceBound?: boolean;
}

/** @internal What a login stores beside the session: see `insertNow`. */
export interface NewSessionDevice {
  userAgent: string | null;
  ip: string | null;
}

/** @internal What the guard's write leaves: the new `expires` and `lastSeen`. */
export interface SessionActivity {
  expires: Date;
  lastSeen: Date | null;
}

/**
 * `authenticated_at` as the package reads it: a row an instance of the previous version
 * inserted during a rolling deploy has none, and its login was its creation.
 */
const AUTHENTICATED_AT = 'coalesce(authenticated_at, created)';

/**
 * The guard's lookup reads times as whole epoch milliseconds (float8, which pg and PGlite
 * hand over as numbers): parsing three timestamp texts per request cost more CPU in
 * `npm run bench`. The id is not read back: the caller has it.
 */
const LOOKUP_COLUMNS =
  `"user", floor(extract(epoch FROM created) * 1000)::float8 AS created, ` +
  `floor(extract(epoch FROM expires) * 1000)::float8 AS expires, ` +
  `floor(extract(epoch FROM ${AUTHENTICATED_AT}) * 1000)::float8 AS "authenticatedAt", ` +
  `floor(extract(epoch FROM now()) * 1000)::float8 AS "now", ` +
  `floor(extract(epoch FROM last_seen) * 1000)::float8 AS "lastSeen", user_agent AS "userAgent", ip, ` +
  `device_key IS NOT NULL AS "deviceBound"`;

/**
 * With `deviceBinding` on: what the guard checks a bound session's bound cookie against, in
 * the same lookup. Off, bound sessions are plain sessions and the lookup reads none of it.
 */
const BOUND_COOKIE_COLUMNS =
  `bound_cookie AS "boundCookie", ` +
  `floor(extract(epoch FROM bound_cookie_expires) * 1000)::float8 AS "boundCookieExpires", ` +
  `previous_bound_cookie AS "previousBoundCookie", ` +
  `floor(extract(epoch FROM previous_bound_cookie_expires) * 1000)::float8 AS "previousBoundCookieExpires"`;

/** @internal A row of the guard's lookup: times in epoch milliseconds. */
interface LookupRow {
  user: string;
  created: number;
  expires: number;
  authenticatedAt: number;
  now: number;
  lastSeen: number | null;
  userAgent: string | null;
  ip: string | null;
  deviceBound: boolean;
  /** Read only with `deviceBinding` on. */
  boundCookie?: string | null;
  boundCookieExpires?: number | null;
  previousBoundCookie?: string | null;
  previousBoundCookieExpires?: number | null;
}

/** @internal pg's `{ name, text, values }` query form, or a pg `Query` with those fields. */
interface NamedQuery {
  name: string;
  text: string;
  values: unknown[];
}

/** @internal The part of the driver's pool the lookup uses. */

export interface DriverPool {
  query(sql: string, parameters: unknown[]): Promise<{ rows: unknown[] }>;
  /** pg's named form: a statement prepared once per connection. */
  query(config: NamedQuery): Promise<{ rows: unknown[] }>;
  /** Set on a `pg.Pool` (its client class), not on PGlite's stand-in, which has no named statements. */
  Client?: unknown;
}

/**
 * @internal SQLSTATEs by which a server refuses a named statement that pg believes it prepared
 * on this connection: 26000 "does not exist" and 42P05 "already exists" (a pooler in
 * transaction mode moved us to another server connection: PgBouncer before 1.21, or
 * with `max_prepared_statements = 0`), 0A000 "cached plan must not change result
 * type" (the table was altered under a running app).
 */
export const PREPARED_STATEMENT_REFUSALS: ReadonlySet<string> = new Set(['26000', '42P05', '0A000']);

/** @internal What the guard's lookup returns: the row and the database's clock. */
export interface SessionLookup {
  session: Session;
  databaseNow: Date;
}

/** @internal What every query but the lookup reads back (the column names as `Session` spells them). */
export const COLUMNS =
  `id, "user", created, expires, ${AUTHENTICATED_AT} AS "authenticatedAt", ` +
  `user_agent AS "userAgent", ip, last_seen AS "lastSeen", device_key IS NOT NULL AS "deviceBound"`;

/** The device binding (`deviceBinding`): a rotation carries it to the new id. */
const DEVICE_BINDING_COLUMNS =
  'device_key, device_session_id, bound_cookie, bound_cookie_expires, previous_bound_cookie, ' +
  'previous_bound_cookie_expires, device_challenges';

/** What inserts write. */
const INSERT_COLUMNS = `id, "user", created, expires, authenticated_at`;

/** @internal The order of a device list, and of `maxSessionsPerUser`'s eviction: most recently used first. */
export const ACTIVITY = `coalesce(last_seen, created)`;

/**
 * @internal First key of the purge's advisory lock (ASCII "sess"); the second is the
 * table's oid, so purges of different session tables never wait for each other.
 */
export const PURGE_LOCK_NAMESPACE = 0x73657373;

/** @internal What one purge batch did. */
export interface PurgeBatch {
  /** False when another connection held the purge lock: nothing was touched. */
  locked: boolean;
  /** Expired rows the batch selected (at most the batch size). */
  found: number;
  /** Rows it deleted (fewer than `found` when others deleted some first). */
  deleted: number;
  /** Largest `expires` it deleted, as ISO 8601 UTC text, for the next batch's `after`. */
  lastExpires: string | null;
}

/**
 * @internal All SQL of the package in one place. Queries are plain parameterised SQL
 * (no query builder on the hot path) and run as single statements, so they are
 * atomic without explicit transactions and behave the same behind PgBouncer and
 * on PGlite. Every time comparison uses the database clock (`now()`), so the app
 * server's clock and time zone never decide whether a session is live.
 */
@Injectable()
export class SessionStore {
  /** Schema-qualified, quoted table name, read from the entity metadata once. */
  private readonly table: string;

  /** Every column of the entity: what the table has once all of `sessionMigrations` ran. */
  private readonly columnNames: string[];

  constructor(
    @Inject(SESSION_DATA_SOURCE) readonly dataSource: DataSource,
    @Inject(SESSION_OPTIONS) options: Pick<ResolvedSessionOptions, 'deviceBinding'>,
  ) {
    const metadata = dataSource.getMetadata(Session);
    this.columnNames = metadata.columns.map((column) => column.databaseName);
    const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
    this.table = metadata.schema ? `${quote(metadata.schema)}.${quote(metadata.tableName)}` : quote(metadata.tableName);
    this.tableLiteral = `'${this.table.replace(/'/g, "''")}'`;
    const { type, logging, logger, maxQueryExecutionTime } = dataSource.options as {
      type: string;
      logging?: unknown;
      logger?: unknown;
      maxQueryExecutionTime?: number;
    };
    this.typeormIsQuiet =
      type === 'postgres' &&
      !logging &&
      typeof logger !== 'object' &&
      !maxQueryExecutionTime &&
      dataSource.subscribers.every((subscriber) => !subscriber.beforeQuery && !subscriber.afterQuery);
    const columns = options.deviceBinding === null ? LOOKUP_COLUMNS : `${LOOKUP_COLUMNS}, ${BOUND_COOKIE_COLUMNS}`;
    this.lookupSql = `SELECT ${columns} FROM ${this.table} WHERE id = $1`;
    this.lookupStatementName = `nts_lookup_${createHash('sha256').update(this.lookupSql).digest('hex').slice(0, 16)}`;
  }

  /** Whether TypeORM's query path would only run the query (no logs, no events): see `quietPool`. */
  private readonly typeormIsQuiet: boolean;

  /** The table name as a SQL string literal, for `::regclass`. */
  private readonly tableLiteral: string;

  private readonly logger = new Logger('SessionStore');

  /** The guard's lookup, and the name it is prepared under (derived from its text, so one name never means two statements). */
  private readonly lookupSql: string;
  private readonly lookupStatementName: string;

  /** Cleared for good the first time the server refuses the prepared lookup (see `preparedLookup`). */
  private prepareLookups = true;

  /** The quoted table name, for the purge and the startup check. */
  get tableName(): string {
    return this.table;
  }

  /**
   * One purge batch, as ONE statement, so it is one short transaction that holds its
   * advisory lock only while it runs (behind PgBouncer in transaction mode too) and
   * never shares PGlite's single connection with an open transaction. The lock is an
   * InitPlan gate: when another connection holds it, no row is even read.
   * Rows are picked through the `expires` index in expiry order from `after` on (the
   * previous batch's largest `expires`, so a long run does not re-walk the index
   * entries it already deleted), then deleted by `ctid` (a TID scan, in heap order).
   * `expires < now()` is checked again on delete, so a row changed meanwhile is spared.
   */
  async purgeExpiredBatch(batchSize: number, after: string | null): Promise<PurgeBatch> {
    const rows: PurgeBatch[] = await this.dataSource.query(
      `WITH lock AS (
         SELECT pg_try_advisory_xact_lock(${PURGE_LOCK_NAMESPACE}, ${this.tableLiteral}::regclass::oid::int4) AS held
       ), doomed AS (
         SELECT ARRAY(
           SELECT ctid FROM ${this.table}
           WHERE (SELECT held FROM lock) AND expires >= $2::timestamptz AND expires < now()
           ORDER BY expires LIMIT $1
         ) AS ctids
       ), purged AS (
         DELETE FROM ${this.table} WHERE ctid = ANY ((SELECT ctids FROM doomed)::tid[]) AND expires < now()
         RETURNING expires
       )
       SELECT (SELECT held FROM lock) AS "locked",
              (SELECT cardinality(ctids) FROM doomed)::int AS "found",
              count(*)::int AS "deleted",
              to_char(max(expires) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "lastExpires"
       FROM purged`,
      [batchSize, after ?? '-infinity'],
    );
    return rows[0];
  }

  /**
   * The entity's columns the table lacks: a migration of a newer release not run yet (the
   * lookup reads them all, so every request would fail). Rejects with 42P01 when the table
   * itself is missing.
   */
  async missingColumns(): Promise<string[]> {
    const rows: { name: string }[] = await this.dataSource.query(
      `SELECT attname AS name FROM pg_attribute
       WHERE attrelid = ${this.tableLiteral}::regclass AND attnum > 0 AND NOT attisdropped`,
    );
    const present = new Set(rows.map((row) => row.name));
    return this.columnNames.filter((column) => !present.has(column));
  }

  async insert(row: SessionRow): Promise<void> {
    await this.dataSource.query(`INSERT INTO ${this.table} (${INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)`, [
      row.id,
      row.user,
      row.created,
      row.expires,
      row.authenticatedAt,
    ]);
  }

  /**
   * Inserts a session created (and last seen) now, database clock, living `ttlMs`, capped
   * at `maxLifetimeMs`, with the login's device.
   *
   * With `maxSessions`, the same statement deletes the user's sessions beyond the
   * `maxSessions - 1` most recently used live ones (expired ones too), so the new one makes
   * `maxSessions`. Concurrent logins of one user are serialised by a transaction-level
   * advisory lock on (table, user) taken by a statement of its own first: a statement reads
   * the snapshot taken when it starts, so a lock taken inside it would still leave it blind
   * to the sessions that logins committed while it waited, and each would keep too many.
   * Under READ COMMITTED the insert's statement starts after the lock is granted and sees
   * every earlier login. One transaction, so it holds behind PgBouncer in transaction mode.
   * PGlite has one connection and runs statements one at a time: the statement alone is
   * already serialised there, and a transaction would share that connection with every
   * other query of the app.
   */
  async insertNow(
    id: string,
    user: string,
    ttlMs: number,
    maxLifetimeMs: number | null,
    device: NewSessionDevice,
    maxSessions: number | null,
  ): Promise<Session> {
    const params: unknown[] = [id, user, ttlMs, maxLifetimeMs ?? ttlMs, device.userAgent, device.ip];
    // statement_timestamp(), not now(): inside the capped login's transaction, now() is when it
    // began, before it waited for the lock; the statement's own start keeps logins in lock order.
    const insert = `INSERT INTO ${this.table} (${INSERT_COLUMNS}, user_agent, ip, last_seen)
       VALUES ($1, $2, statement_timestamp(), statement_timestamp() + LEAST($3::float8, $4::float8) * interval '1 millisecond',
               statement_timestamp(), $5, $6, statement_timestamp())
       RETURNING ${COLUMNS}`;
    if (maxSessions === null) {
      const rows: SessionRow[] = await this.dataSource.query(insert, params);
      return toSession(rows[0].id, rows[0]);
    }
    params.push(maxSessions - 1);
    const insertAndEvict = `WITH inserted AS (${insert}),
       evicted AS (
         DELETE FROM ${this.table} WHERE "user" = $2 AND id NOT IN (
           SELECT id FROM ${this.table}
           WHERE "user" = $2 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 4)}
           ORDER BY ${ACTIVITY} DESC, id LIMIT $7
         )
       )
       SELECT * FROM inserted`;
    const lock = `SELECT pg_advisory_xact_lock(${this.tableLiteral}::regclass::oid::int4, hashtext($1)) AS locked`;
    let rows: SessionRow[];
    if (this.sharesOneConnection()) {
      rows = await this.dataSource.query(insertAndEvict, params);
    } else {
      rows = await this.dataSource.transaction('READ COMMITTED', async (manager) => {
        await manager.query(lock, [user]);
        return manager.query(insertAndEvict, params);
      });
    }
    return toSession(rows[0].id, rows[0]);
  }

  /** Whether the driver is PGlite's single connection (a `pg.Pool` has a `Client` class; PGlite's stand-in has none). */
  private sharesOneConnection(): boolean {
    const master = (this.dataSource.driver as { master?: Partial<DriverPool> }).master;
    return typeof master?.Client !== 'function';
  }

  async findById(id: string): Promise<Session | null> {
    const rows: SessionRow[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM ${this.table} WHERE id = $1`, [id]);
    return rows.length ? toSession(rows[0].id, rows[0]) : null;
  }

  /**
   * The guard's one primary-key lookup: the row (live or not) and the database's `now()`.
   * When TypeORM would add nothing observable (see `quietPool`) it goes straight to the
   * driver's pool: `DataSource.query` builds a QueryRunner, checks a connection out and
   * back in and fires query events on every call, CPU the guard pays per request.
   * `pool`: another server's pool (a standby's, see `ReplicaReads`) for the same statement.
   */
  async lookup(id: string, pool: DriverPool | null = this.quietPool()): Promise<SessionLookup | null> {
    let rows: unknown[];
    if (pool === null) rows = await this.dataSource.query(this.lookupSql, [id]);
    else if (this.prepareLookups && typeof pool.Client === 'function') rows = await this.preparedLookup(pool, id);
    else rows = (await pool.query(this.lookupSql, [id])).rows;
    if (rows.length === 0) return null;
    const row = rows[0] as LookupRow;
    return { session: toSession(id, row), databaseNow: new Date(row.now) };
  }

  /**
   * The lookup as a named statement on `pg`: each pool connection parses and plans it
   * once, then only binds and executes it. Parsing and planning are most of what
   * PostgreSQL spends on a primary-key SELECT, CPU it then shares with the app on a
   * small machine (`npm run bench`). When the server refuses the statement (a
   * transaction-mode pooler, or the table altered under the app) this request, and every
   * later one, runs it unnamed instead: slower, never wrong.
   */
  private async preparedLookup(pool: DriverPool, id: string): Promise<unknown[]> {
    try {
      return (await pool.query(this.namedLookup(id))).rows;
    } catch (error) {
      if (!PREPARED_STATEMENT_REFUSALS.has(databaseErrorCode(error) ?? '')) throw error;
      if (this.prepareLookups) {
        this.prepareLookups = false;
        this.logger.warn(
          `The database refused the prepared session lookup (${describeDatabaseError(error)}); ` +
            'session lookups run unprepared from now on. Behind PgBouncer in transaction mode, ' +
            'version 1.21+ with `max_prepared_statements` > 0 keeps them prepared.',
        );
      }
      return (await pool.query(this.lookupSql, [id])).rows;
    }
  }

  /**
   * The prepared lookup for `id`. pg copies a `{ name, text, values }` object, property
   * descriptors and all, on every call (3.7 µs against 0.2 µs for text, measured on the
   * bench machine: more than the rest of the guard's own work on a cache hit); a pg `Query`
   * made from the text, named after construction, is sent as-is and prepared the same way
   * (`test/session-store-lookup.spec.ts` reads `pg_prepared_statements`).
   */
  private namedLookup(id: string): NamedQuery {
    const Query = (
      this.dataSource.driver as { postgres?: { Query?: new (text: string, values: unknown[]) => NamedQuery } }
    ).postgres?.Query;
    if (typeof Query !== 'function') return { name: this.lookupStatementName, text: this.lookupSql, values: [id] };
    const query = new Query(this.lookupSql, [id]);
    query.name = this.lookupStatementName;
    return query;
  }

  /**
   * The driver's pool (`pg.Pool`, or PGlite's stand-in) when bypassing `DataSource.query`
   * changes nothing anyone can see: a `postgres` data source without query logging, custom
   * logger, slow-query threshold or query subscribers, whose `query` nobody has wrapped
   * (an APM agent, a test spy). Otherwise null: go through TypeORM.
   */
  private quietPool(): DriverPool | null {
    if (!this.typeormIsQuiet || this.dataSource.query !== DataSource.prototype.query) return null;
    const master = (this.dataSource.driver as { master?: Partial<DriverPool> }).master;
    return typeof master?.query === 'function' ? (master as DriverPool) : null;
  }

  /** The user of a live session, or null. */
  async findLiveUser(id: string, maxLifetimeMs: number | null): Promise<string | null> {
    const rows: { user: string }[] = await this.dataSource.query(
      `SELECT "user" FROM ${this.table} WHERE id = $1 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 2)}`,
      maxLifetimeMs === null ? [id] : [id, maxLifetimeMs],
    );
    return rows.length ? rows[0].user : null;
  }

  /**
   * A user's live sessions, newest first: most recently created, or most recently used
   * (`lastSeen`, else `created` for rows older than that column); `limit` caps how many.
   */
  async findLiveByUser(
    user: string,
    maxLifetimeMs: number | null,
    limit: number | null,
    newest: 'created' | 'activity',
  ): Promise<Session[]> {
    const params: unknown[] = [user];
    if (maxLifetimeMs !== null) params.push(maxLifetimeMs);
    const limitClause = limit === null ? '' : `LIMIT ${Math.trunc(limit)}`;
    const rows: SessionRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM ${this.table}
       WHERE "user" = $1 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 2)}
       ORDER BY ${newest === 'created' ? 'created' : ACTIVITY} DESC, id ${limitClause}`,
      params,
    );
    return rows.map((row) => toSession(row.id, row));
  }

  /**
   * Pushes `expires` to now + `ttlMs` (never past `created + maxLifetimeMs`) and, with
   * `touch`, `last_seen` to now: one write for both. Returns the new values, null when the
   * session is gone or expired. Wrapped in a SELECT: for a top-level UPDATE, TypeORM's
   * `query()` returns `[rows, rowCount]` on pg instead of the rows.
   */
  async extend(
    id: string,
    ttlMs: number,
    maxLifetimeMs: number | null,
    touch: boolean,
  ): Promise<SessionActivity | null> {
    const rows: SessionActivity[] = await this.dataSource.query(
      `WITH renewed AS (
         UPDATE ${this.table}
         SET expires = LEAST(now() + $2::float8 * interval '1 millisecond',
                             created + $3::float8 * interval '1 millisecond')${touch ? ', last_seen = now()' : ''}
         WHERE id = $1 AND expires > now()
         RETURNING expires, last_seen
       )
       SELECT expires, last_seen AS "lastSeen" FROM renewed`,
      [id, ttlMs, maxLifetimeMs ?? Number.MAX_SAFE_INTEGER],
    );
    return rows.length ? toActivity(rows[0]) : null;
  }

  /**
   * Moves `last_seen` to now unless it moved less than `intervalMs` ago. The condition is
   * checked again on the locked row, so requests racing on one session (on any number of
   * app instances) write it once: the others find it fresh and write nothing. Returns the
   * new values, or null when nothing was written.
   */
  async touch(id: string, intervalMs: number): Promise<SessionActivity | null> {
    const rows: SessionActivity[] = await this.dataSource.query(
      `WITH touched AS (
         UPDATE ${this.table} SET last_seen = now()
         WHERE id = $1 AND expires > now()
           AND (last_seen IS NULL OR last_seen <= now() - $2::float8 * interval '1 millisecond')
         RETURNING expires, last_seen
       )
       SELECT expires, last_seen AS "lastSeen" FROM touched`,
      [id, intervalMs],
    );
    return rows.length ? toActivity(rows[0]) : null;
  }

  /**
   * Atomically replaces live session `oldId` by `newId` (same user, created and
   * expires; `authenticated_at` kept, or set to `now()` with `reauthenticated`).
   * Concurrent rotations of one id: exactly one wins, the others get null.
   * A session past `created + maxLifetimeMs` is not live: it is not rotated.
   */
  async replaceId(
    oldId: string,
    newId: string,
    maxLifetimeMs: number | null,
    reauthenticated = false,
  ): Promise<Session | null> {
    const rows: SessionRow[] = await this.dataSource.query(
      `WITH old AS (DELETE FROM ${this.table} WHERE id = $1 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 3)}
                    RETURNING "user", created, expires, ${AUTHENTICATED_AT} AS authenticated_at, user_agent, ip, last_seen,
                              ${DEVICE_BINDING_COLUMNS})
       INSERT INTO ${this.table} (${INSERT_COLUMNS}, user_agent, ip, last_seen, ${DEVICE_BINDING_COLUMNS})
       SELECT $2, "user", created, expires, ${reauthenticated ? 'now()' : 'authenticated_at'}, user_agent, ip, last_seen,
              ${DEVICE_BINDING_COLUMNS} FROM old
       RETURNING ${COLUMNS}`,
      maxLifetimeMs === null ? [oldId, newId] : [oldId, newId, maxLifetimeMs],
    );
    return rows.length ? toSession(rows[0].id, rows[0]) : null;
  }

  async deleteById(id: string): Promise<number> {
    return this.countDeleted(`DELETE FROM ${this.table} WHERE id = $1 RETURNING 1`, [id]);
  }

  /**
   * Deletes the session whose cookie value has SHA-256 hex digest `digest` (of `user` only,
   * unless null). With hashed ids that is the stored id; with ids stored as-is the digest
   * is computed in SQL, unindexed: the `user` index narrows the scoped delete, the
   * unscoped one (admin `deleteById`) scans the table.
   */
  async deleteByDigest(digest: string, user: string | null, idsHashed: boolean): Promise<number> {
    const idMatches = idsHashed ? 'id = $1' : `encode(sha256(convert_to(id, 'UTF8')), 'hex') = $1`;
    return user === null
      ? this.countDeleted(`DELETE FROM ${this.table} WHERE ${idMatches} RETURNING 1`, [digest])
      : this.countDeleted(`DELETE FROM ${this.table} WHERE ${idMatches} AND "user" = $2 RETURNING 1`, [digest, user]);
  }

  async deleteByUser(user: string): Promise<number> {
    return this.countDeleted(`DELETE FROM ${this.table} WHERE "user" = $1 RETURNING 1`, [user]);
  }

  /** Deletes the user's sessions other than `keepId`, only if `keepId` is one of them (one statement). */
  async deleteByUserExcept(user: string, keepId: string): Promise<number> {
    return this.countDeleted(
      `DELETE FROM ${this.table} WHERE "user" = $1 AND id <> $2
         AND EXISTS (SELECT 1 FROM ${this.table} WHERE id = $2 AND "user" = $1) RETURNING 1`,
      [user, keepId],
    );
  }

  /** Counted in SQL: drivers disagree on how they report affected rows (pg vs PGlite). */
  private async countDeleted(deleteReturning: string, params: unknown[]): Promise<number> {
    const rows: { deleted: number }[] = await this.dataSource.query(
      `WITH d AS (${deleteReturning}) SELECT count(*)::int AS deleted FROM d`,
      params,
    );
    return rows[0].deleted;
  }
}

/** With an absolute timeout, `AND created > now() - max` (parameter number `param`); else nothing. */
function liveCreatedClause(maxLifetimeMs: number | null, param: number): string {
  return maxLifetimeMs === null ? '' : `AND created > now() - $${param}::float8 * interval '1 millisecond'`;
}

/** @internal A `Session` entity from a row: times as `Date`s, or as the lookup's epoch milliseconds. */
export function toSession(id: string, row: SessionRow | LookupRow): Session {
  const session = new Session();
  session.id = id;
  session.user = row.user;
  session.created = new Date(row.created);
  session.expires = new Date(row.expires);
  session.authenticatedAt = new Date(row.authenticatedAt);
  session.userAgent = row.userAgent ?? null;
  session.ip = row.ip ?? null;
  session.lastSeen = row.lastSeen === null || row.lastSeen === undefined ? null : new Date(row.lastSeen);
  session.deviceBound = row.deviceBound === true;
  if ('boundCookie' in row) {
    const at = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms));
    session.boundCookie = row.boundCookie ?? null;
    session.boundCookieExpires = at(row.boundCookieExpires);
    session.previousBoundCookie = row.previousBoundCookie ?? null;
    session.previousBoundCookieExpires = at(row.previousBoundCookieExpires);
  }
  return session;
}

function toActivity(row: { expires: Date | string; lastSeen: Date | string | null }): SessionActivity {
  return { expires: new Date(row.expires), lastSeen: row.lastSeen === null ? null : new Date(row.lastSeen) };
}
