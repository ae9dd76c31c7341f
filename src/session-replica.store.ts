import { Injectable } from '@nestjs/common';
import { Session } from './session.entity.js';
import { ACTIVITY, COLUMNS, type DriverPool, type SessionRow, SessionStore, toSession } from './session.store.js';

/** @internal A primary's WAL position and clock, read together. */
export interface PrimaryPosition {
  /** `pg_current_wal_lsn()`: every transaction that committed before the read is at or below it. */
  lsn: bigint;
  /** The primary's `now()`, epoch ms. */
  databaseNow: number;
}

/**
 * @internal The SQL of `readFromReplicas`, next to the store that holds every other statement:
 * the lag readings, and the reads a standby serves. The guard's lookup is the store's own
 * prepared statement, run on a standby's pool (`SessionStore.lookup(id, pool)`).
 */
@Injectable()
export class SessionReplicaStore {
  constructor(private readonly store: SessionStore) {}

  /**
   * The primary's WAL write position. With `synchronous_commit` on (the default) a commit has
   * been written before it returns, so it is at or below this position.
   */
  async primaryPosition(pool: DriverPool): Promise<PrimaryPosition> {
    const { rows } = await pool.query(
      `SELECT pg_current_wal_lsn()::text AS lsn, floor(extract(epoch FROM now()) * 1000)::float8 AS "now"`,
      [],
    );
    const row = rows[0] as { lsn: string; now: number };
    return { lsn: parseLsn(row.lsn), databaseNow: Number(row.now) };
  }

  /** How far a standby has replayed (what its queries see), or null on a server that is not a standby. */
  async replayPosition(pool: DriverPool): Promise<bigint | null> {
    const { rows } = await pool.query(`SELECT pg_last_wal_replay_lsn()::text AS lsn`, []);
    const lsn = (rows[0] as { lsn: string | null }).lsn;
    return lsn === null ? null : parseLsn(lsn);
  }

  /**
   * A user's sessions live at `databaseNow` (the primary's clock, as the caller estimates it: a
   * standby's own clock may differ), most recently used first: `listByUserId` on a standby.
   */
  async liveByUser(
    pool: DriverPool,
    user: string,
    maxLifetimeMs: number | null,
    databaseNow: Date,
  ): Promise<Session[]> {
    const params: unknown[] = [user, databaseNow];
    if (maxLifetimeMs !== null) params.push(maxLifetimeMs);
    const { rows } = await pool.query(
      `SELECT ${COLUMNS} FROM ${this.store.tableName}
       WHERE "user" = $1 AND expires > $2::timestamptz
         ${maxLifetimeMs === null ? '' : `AND created > $2::timestamptz - $3::float8 * interval '1 millisecond'`}
       ORDER BY ${ACTIVITY} DESC, id`,
      params,
    );
    return (rows as SessionRow[]).map((row) => toSession(row.id, row));
  }
}

/** `16/B374D848` → a number that orders as the WAL does. */
export function parseLsn(text: string): bigint {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}
