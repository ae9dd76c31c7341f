import { Injectable } from '@nestjs/common';
import type { DevicePublicKey } from './device-binding/dbsc-proof.js';
import { SessionStore } from './session.store.js';

/** @internal A live session's binding, as the DBSC endpoints read it. */
export interface DeviceBindingRow {
  /** Null while the session is not bound. */
  deviceKey: DevicePublicKey | null;
  deviceSessionId: string | null;
}

/** @internal The bound cookie a registration or refresh stored. */
export interface StoredBoundCookie {
  boundCookieExpires: Date;
  /** The database clock when it was written. */
  databaseNow: Date;
}

/** `now()` in epoch milliseconds, as challenge expiries are kept. */
const NOW_MS = `(extract(epoch FROM now()) * 1000)::float8`;

/** The open challenges of the row, newest first, expired ones left out. */
const OPEN_CHALLENGES = `jsonb_array_elements(coalesce(device_challenges, '[]'::jsonb))`;

/**
 * @internal The SQL of `deviceBinding` (DBSC), next to the store that holds every other
 * statement. Each write is one statement whose WHERE re-checks what the caller verified
 * (the session live, the key, the challenge open): two refreshes racing on one challenge,
 * or a logout racing a refresh, leave exactly one outcome. The guard reads none of this
 * directly: its one primary-key lookup (`SessionStore.lookup`) carries the bound cookie.
 */
@Injectable()
export class SessionDeviceBindingStore {
  constructor(private readonly store: SessionStore) {}

  private get table(): string {
    return this.store.tableName;
  }

  /** The binding of a live session, or null when the session is absent or expired. */
  async findBinding(id: string, maxLifetimeMs: number | null): Promise<DeviceBindingRow | null> {
    const rows: DeviceBindingRow[] = await this.store.dataSource.query(
      `SELECT device_key AS "deviceKey", device_session_id AS "deviceSessionId" FROM ${this.table}
       WHERE id = $1 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 2)}`,
      maxLifetimeMs === null ? [id] : [id, maxLifetimeMs],
    );
    return rows.length ? { deviceKey: parseJson(rows[0].deviceKey), deviceSessionId: rows[0].deviceSessionId } : null;
  }

  /**
   * Opens `challenge` on a live session for `ttlMs`, keeping the `keep - 1` newest still
   * open (a proof over a slightly older one may still be on its way). False when the
   * session is gone.
   */
  async openChallenge(id: string, challenge: string, ttlMs: number, keep: number): Promise<boolean> {
    const rows: unknown[] = await this.store.dataSource.query(
      `WITH opened AS (
         UPDATE ${this.table} SET device_challenges = (
           SELECT jsonb_agg(c ORDER BY (c->>'expires')::float8 DESC) FROM (
             SELECT c FROM jsonb_array_elements(
               jsonb_build_array(jsonb_build_object('value', $2::text, 'expires', ${NOW_MS} + $3::float8))
               || coalesce(device_challenges, '[]'::jsonb)) c
             WHERE (c->>'expires')::float8 > ${NOW_MS}
             ORDER BY (c->>'expires')::float8 DESC LIMIT $4
           ) kept)
         WHERE id = $1 AND expires > now()
         RETURNING 1
       )
       SELECT 1 FROM opened`,
      [id, challenge, ttlMs, keep],
    );
    return rows.length > 0;
  }

  /**
   * Binds an unbound live session to `key` when `challenge` is one of its open challenges:
   * stores the key, the DBSC session id and the first bound cookie, and closes every
   * challenge (one use). Null when any condition failed: nothing was written.
   */
  async bind(
    id: string,
    maxLifetimeMs: number | null,
    binding: { key: DevicePublicKey; deviceSessionId: string; challenge: string },
    boundCookie: { digest: string; ttlMs: number },
  ): Promise<StoredBoundCookie | null> {
    const rows: StoredBoundCookie[] = await this.store.dataSource.query(
      `WITH bound AS (
         UPDATE ${this.table}
         SET device_key = $2::jsonb, device_session_id = $3, bound_cookie = $5,
             bound_cookie_expires = now() + $6::float8 * interval '1 millisecond',
             previous_bound_cookie = NULL, previous_bound_cookie_expires = NULL, device_challenges = NULL
         WHERE id = $1 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 7)} AND device_key IS NULL
           AND EXISTS (SELECT 1 FROM ${OPEN_CHALLENGES} c
                       WHERE c->>'value' = $4 AND (c->>'expires')::float8 > ${NOW_MS})
         RETURNING bound_cookie_expires, now() AS now
       )
       SELECT bound_cookie_expires AS "boundCookieExpires", now AS "databaseNow" FROM bound`,
      [
        id,
        JSON.stringify(binding.key),
        binding.deviceSessionId,
        binding.challenge,
        boundCookie.digest,
        boundCookie.ttlMs,
        ...(maxLifetimeMs === null ? [] : [maxLifetimeMs]),
      ],
    );
    return rows.length ? toStoredBoundCookie(rows[0]) : null;
  }

  /**
   * A refresh: when the session is still bound to `key` under `deviceSessionId` and
   * `challenge` is open, the current bound cookie becomes the previous one, the new one is
   * stored, and the open challenges are replaced by `nextChallenge` alone (so each is used
   * once). Null when any condition failed: nothing was written.
   */
  async renew(
    id: string,
    maxLifetimeMs: number | null,
    proof: { key: DevicePublicKey; deviceSessionId: string; challenge: string },
    boundCookie: { digest: string; ttlMs: number },
    nextChallenge: { value: string; ttlMs: number },
  ): Promise<StoredBoundCookie | null> {
    const rows: StoredBoundCookie[] = await this.store.dataSource.query(
      `WITH renewed AS (
         UPDATE ${this.table}
         SET previous_bound_cookie = bound_cookie, previous_bound_cookie_expires = bound_cookie_expires,
             bound_cookie = $5, bound_cookie_expires = now() + $6::float8 * interval '1 millisecond',
             device_challenges = jsonb_build_array(jsonb_build_object('value', $7::text, 'expires', ${NOW_MS} + $8::float8))
         WHERE id = $1 AND expires > now() ${liveCreatedClause(maxLifetimeMs, 9)}
           AND device_key = $2::jsonb AND device_session_id = $3
           AND EXISTS (SELECT 1 FROM ${OPEN_CHALLENGES} c
                       WHERE c->>'value' = $4 AND (c->>'expires')::float8 > ${NOW_MS})
         RETURNING bound_cookie_expires, now() AS now
       )
       SELECT bound_cookie_expires AS "boundCookieExpires", now AS "databaseNow" FROM renewed`,
      [
        id,
        JSON.stringify(proof.key),
        proof.deviceSessionId,
        proof.challenge,
        boundCookie.digest,
        boundCookie.ttlMs,
        nextChallenge.value,
        nextChallenge.ttlMs,
        ...(maxLifetimeMs === null ? [] : [maxLifetimeMs]),
      ],
    );
    return rows.length ? toStoredBoundCookie(rows[0]) : null;
  }
}

/** With an absolute timeout, `AND created > now() - max` (parameter number `param`); else nothing. */
function liveCreatedClause(maxLifetimeMs: number | null, param: number): string {
  return maxLifetimeMs === null ? '' : `AND created > now() - $${param}::float8 * interval '1 millisecond'`;
}

/** jsonb arrives parsed from pg, and as text from some drivers. */
function parseJson<T>(value: T | string | null): T | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}

function toStoredBoundCookie(row: {
  boundCookieExpires: Date | string;
  databaseNow: Date | string;
}): StoredBoundCookie {
  return { boundCookieExpires: new Date(row.boundCookieExpires), databaseNow: new Date(row.databaseNow) };
}
