import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import {
  describeDatabaseError,
  DuplicateSessionError,
  databaseErrorCode,
  InvalidSessionError,
  SessionConfigurationError,
} from './errors.js';
import { lookupSession } from './cache/cached-lookup.js';
import { SessionCache } from './cache/session-cache.js';
import { ReplicaReads } from './replicas/replica-reads.js';
import { MAX_SESSION_ID_LENGTH, SESSION_ID_COLUMN_LENGTH, SESSION_OPTIONS } from './session.constants.js';
import { Session } from './session.entity.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionStore } from './session.store.js';
import { type SessionDevice, storedDevice } from './session-device.js';
import { generateCookieValue, isSessionDigest, isWellFormedSessionId, sessionDigest } from './session-token.js';

/** Longest user id the `"user"` column holds. */
const MAX_USER_ID_LENGTH = 255;

/** A session just created, with the cookie value that opens it. @publicApi */
export interface IssuedSession {
  /** What goes in the cookie. Never stored when ids are hashed. */
  cookieValue: string;
  /** The stored row (its `id` is the digest of `cookieValue`, as everywhere the service hands out a `Session`). */
  session: Session;
}

/** What the guard learns from a cookie value. @publicApi */
export type SessionValidation =
  | {
      valid: true;
      session: Session;
      /** Set when sliding expiry pushed `expires`: refresh the cookie. */ renewedExpires: Date | null;
      /** The database clock at the check: what `@RequireRecentLogin` measures `authenticatedAt` against. */
      checkedAt: Date;
    }
  | { valid: false };

const INVALID: SessionValidation = { valid: false };

/**
 * Creates, reads and deletes sessions. Every `sessionId` argument is the cookie
 * value; with `hashSessionIds` the service hashes it before it reaches SQL.
 * Methods reject with the driver's error when the database fails.
 *
 * Every `Session` it returns has as `id` the SHA-256 hex digest of its cookie value,
 * whatever `hashSessionIds` says: a handle that names the session (device lists,
 * `deleteUserSession`) but cannot open it, so it is safe to send to a page. With
 * hashed ids that is the stored id; with `hashSessionIds: false` the table holds the
 * cookie value itself, and the service hands out its digest instead.
 * @publicApi
 */
@Injectable()
export class SessionService implements OnApplicationBootstrap {
  private readonly logger = new Logger('SessionService');

  constructor(
    private readonly store: SessionStore,
    @Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions,
    @Inject(SessionCache) private readonly cache: SessionCache,
    @Inject(ReplicaReads) private readonly reads: ReplicaReads,
  ) {}

  /**
   * Fails startup with the fix when the `sessions` table is missing, or lacks the columns
   * of a migration added by a newer release, instead of a "relation does not exist" or
   * "column does not exist" (a 503) on every request. Any other error (database not yet
   * reachable) is only logged: requests then answer 503 until it is.
   */
  async onApplicationBootstrap(): Promise<void> {
    let missing: string[];
    try {
      missing = await this.store.missingColumns();
    } catch (error) {
      // 3F000: the table's schema does not exist either (`::regclass` says so rather than 42P01).
      if (['42P01', '3F000'].includes(databaseErrorCode(error) ?? '')) {
        throw new SessionConfigurationError(
          `table ${this.store.tableName} does not exist. Run the package's migration: add ` +
            '`...sessionMigrations` to your DataSource `migrations` and run `typeorm migration:run` ' +
            '(or set `migrationsRun: true`).',
        );
      }
      this.logger.warn(`Could not check the sessions table at startup: ${describeDatabaseError(error)}`);
      return;
    }
    if (missing.length > 0) {
      throw new SessionConfigurationError(
        `table ${this.store.tableName} lacks column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: ` +
          'a migration of this release of the package has not run. Keep `...sessionMigrations` in your DataSource ' +
          '`migrations` and run `typeorm migration:run` (or set `migrationsRun: true`).',
      );
    }
  }

  /**
   * Stores a session whose id the caller chose (the seed's manual path, for custom
   * expiration). `session.id` is the cookie value. `authenticatedAt` defaults to `created`.
   * @throws InvalidSessionError for an empty user, an invalid date, `expires` not after
   *   `created`, or an id that cannot be a cookie value (over 1024 characters, or over 255
   *   with `hashSessionIds: false`, where the id column holds it as-is); DuplicateSessionError
   *   when the id exists. Nothing is written in either case.
   */
  async create(session: {
    id: string;
    user: string;
    created: Date;
    expires: Date;
    authenticatedAt?: Date;
  }): Promise<void> {
    const id = this.storedId(session?.id);
    if (id === null) {
      const longest = this.options.hashSessionIds ? MAX_SESSION_ID_LENGTH : SESSION_ID_COLUMN_LENGTH;
      throw new InvalidSessionError(`Session id must be 1 to ${longest} cookie-safe characters.`);
    }
    assertValidUserId(session.user);
    const { created, expires } = session;
    const authenticatedAt = session.authenticatedAt ?? created;
    if (!isValidDate(created) || !isValidDate(expires) || !isValidDate(authenticatedAt)) {
      throw new InvalidSessionError('Session created, expires and authenticatedAt must be valid Dates.');
    }
    if (expires.getTime() <= created.getTime()) {
      throw new InvalidSessionError('Session expires must be after created.');
    }
    const cappedExpires =
      this.options.absoluteTimeout === null
        ? expires
        : new Date(Math.min(expires.getTime(), created.getTime() + this.options.absoluteTimeout));
    try {
      await this.store.insert({ id, user: session.user, created, expires: cappedExpires, authenticatedAt });
    } catch (error) {
      if (databaseErrorCode(error) === '23505') throw new DuplicateSessionError();
      throw error;
    }
  }

  /**
   * Creates a session for `userId` expiring after `ttl`; returns the cookie value.
   * `device` (the login request's `User-Agent` and address) is stored as the `deviceInfo`
   * option allows, cleaned; a value that is not a string, or not an IP address, is
   * stored as null, never an error. With `maxSessionsPerUser`, the user's least recently
   * used sessions beyond it are deleted by the same statement.
   */
  async createSessionForUser(userId: string, device?: SessionDevice): Promise<string> {
    return (await this.issueSession(userId, device)).cookieValue;
  }

  /** Like `createSessionForUser`, also returning the stored row (for the cookie's expiry). */
  async issueSession(userId: string, device?: SessionDevice): Promise<IssuedSession> {
    assertValidUserId(userId);
    const cookieValue = generateCookieValue();
    const session = await this.store.insertNow(
      this.toId(cookieValue),
      userId,
      this.options.ttl,
      this.options.absoluteTimeout,
      storedDevice(device, this.options.deviceInfo),
      this.options.maxSessionsPerUser,
    );
    this.reads.loggedIn(userId);
    return { cookieValue, session: this.exposed(session) };
  }

  /** The session behind a cookie value, expired or not (check `isExpired()`), or null. */
  async get(sessionId: string): Promise<Session | null> {
    const id = this.storedId(sessionId);
    const session = id === null ? null : await this.reads.findById(id);
    return session && this.exposed(session);
  }

  /** The user's most recently created live session, or null. */
  async getByUserId(userId: string): Promise<Session | null> {
    if (!isValidUserId(userId)) return null;
    const [newest] = await this.store.findLiveByUser(userId, this.options.absoluteTimeout, 1, 'created');
    return newest ? this.exposed(newest) : null;
  }

  /** The user id of a live session, or null when the session is absent or expired. */
  async getUserIdFromSessionId(sessionId: string): Promise<string | null> {
    const id = this.storedId(sessionId);
    return id === null ? null : this.reads.findLiveUser(id);
  }

  /** Deletes the session behind a cookie value; does nothing when there is none. */
  async deleteSession(sessionId: string): Promise<void> {
    const id = this.storedId(sessionId);
    if (id === null) return;
    await this.store.deleteById(id);
    this.cache.invalidate([id]);
  }

  /** Deletes every session of a user ("log out everywhere"); returns how many. */
  async deleteSessionsByUserId(userId: string): Promise<number> {
    if (!isValidUserId(userId)) return 0;
    const deleted = await this.store.deleteByUser(userId);
    this.cache.invalidateUser(userId);
    return deleted;
  }

  /**
   * Replaces a live session by a fresh cookie value for the same user, keeping its
   * `created`, `expires` and `authenticatedAt`, in one statement: the old value stops working at once.
   * Call it after privilege changes (login, password change) against fixation.
   * Returns the new cookie value, or null when the session is absent or expired
   * (also for the losers of concurrent rotations of the same value).
   */
  async rotate(sessionId: string): Promise<string | null> {
    return (await this.rotateSession(sessionId))?.cookieValue ?? null;
  }

  /** Like `rotate`, also returning the new row. */
  async rotateSession(sessionId: string): Promise<IssuedSession | null> {
    const id = this.storedId(sessionId);
    if (id === null) return null;
    const cookieValue = generateCookieValue();
    const session = await this.store.replaceId(id, this.toId(cookieValue), this.options.absoluteTimeout);
    this.cache.invalidate([id]);
    return session && { cookieValue, session: this.exposed(session) };
  }

  /**
   * Records that the user just proved who they are again — call it after you have checked
   * their password (or second factor) — for `@RequireRecentLogin` routes: moves
   * `authenticatedAt` to the database's `now()` and, as for any privilege change, replaces
   * the session id, in one statement (the old value stops working at once; `created` and
   * `expires` are kept). Returns the new cookie value, or null when the session is absent or
   * expired (also for the losers of concurrent calls with the same value): ask for a login.
   * `SessionCookies.reauthenticate` also sets the cookie.
   */
  async reauthenticate(sessionId: string): Promise<string | null> {
    return (await this.reauthenticateSession(sessionId))?.cookieValue ?? null;
  }

  /** Like `reauthenticate`, also returning the new row. */
  async reauthenticateSession(sessionId: string): Promise<IssuedSession | null> {
    const id = this.storedId(sessionId);
    if (id === null) return null;
    const cookieValue = generateCookieValue();
    const session = await this.store.replaceId(id, this.toId(cookieValue), this.options.absoluteTimeout, true);
    this.cache.invalidate([id]);
    return session && { cookieValue, session: this.exposed(session) };
  }

  /**
   * A user's live sessions (one per device/browser) with their `userAgent`, `ip` and
   * `lastSeen`, most recently used first (sessions never seen since this column came:
   * by `created`).
   */
  async listByUserId(userId: string): Promise<Session[]> {
    if (!isValidUserId(userId)) return [];
    const sessions = await this.reads.listLiveByUser(userId);
    return sessions.map((session) => this.exposed(session));
  }

  /**
   * Deletes a session by its `Session.id` (what `listByUserId` shows: the digest of its
   * cookie value), whoever it belongs to: for admin tools. For a user's own "revoke that
   * device", use `deleteUserSession`. Returns whether one was deleted. With
   * `hashSessionIds: false` it compares digests computed in SQL: a scan of the table.
   */
  async deleteById(id: string): Promise<boolean> {
    if (!isSessionDigest(id)) return false;
    const deleted = await this.store.deleteByDigest(id, null, this.options.hashSessionIds);
    this.forgetDigest(id);
    return deleted > 0;
  }

  /**
   * "Revoke that device": deletes the session whose `Session.id` is `id` (as
   * `listByUserId` lists it, in both `hashSessionIds` modes) only if it belongs to
   * `userId`, in one statement, so an id taken from someone else's list deletes
   * nothing. A cookie value is not an `id`. Returns whether one was deleted.
   */
  async deleteUserSession(userId: string, id: string): Promise<boolean> {
    if (!isValidUserId(userId) || !isSessionDigest(id)) return false;
    const deleted = await this.store.deleteByDigest(id, userId, this.options.hashSessionIds);
    this.forgetDigest(id);
    return deleted > 0;
  }

  /**
   * "Log out other devices": deletes all of a user's sessions except the one behind
   * `keepSessionId` (a cookie value, e.g. `SessionCookies.getCookieValue(request)`).
   * Returns how many were deleted.
   *
   * Deletes nothing (returns 0) unless `keepSessionId` is a session of `userId`: when it
   * is missing, malformed, unknown (rotated or logged out meanwhile) or someone else's,
   * there is no "this device" to keep, and deleting everything would log it out too.
   * Checked in the same statement as the delete.
   */
  async deleteOtherSessions(userId: string, keepSessionId: string): Promise<number> {
    const keepId = this.storedId(keepSessionId);
    if (!isValidUserId(userId) || keepId === null) return 0;
    const deleted = await this.store.deleteByUserExcept(userId, keepId);
    this.cache.invalidateUser(userId, keepId);
    return deleted;
  }

  /**
   * @internal The guard's synchronous path: the answer when it needs neither a query nor a
   * write (a value no row can have: invalid; a session the usable cache holds, with no
   * activity write due: valid), undefined otherwise (then `validate`). A cache hit then
   * costs the guard no promise at all.
   */
  validateInMemory(sessionId: unknown, useCache: boolean): SessionValidation | undefined {
    const id = this.storedId(sessionId);
    if (id === null) return INVALID;
    if (!useCache || !this.cache.usable) return undefined;
    const cached = this.cache.get(id);
    if (cached === null) return undefined;
    const { session, databaseNow } = cached;
    if (this.activityDue(session, databaseNow.getTime())) return undefined;
    return { valid: true, session: this.exposed(session), renewedExpires: null, checkedAt: databaseNow };
  }

  /**
   * The guard's check: one primary-key lookup, decided by the database clock. An
   * expired session is deleted; with `rolling`, a session past half its `ttl` is
   * extended; a session whose `lastSeen` is `activityInterval` old or more gets it moved
   * (one UPDATE for both when both are due). Rejects only when the database fails. With
   * `cache` on, a session this instance has seen is answered from memory (no query) unless
   * `useCache` is false (`@NoSessionCache()` routes) or the cache's listener is not subscribed.
   */
  async validate(sessionId: unknown, { useCache = true }: { useCache?: boolean } = {}): Promise<SessionValidation> {
    const id = this.storedId(sessionId);
    if (id === null) return INVALID;
    const found = await lookupSession(this.reads, this.cache, id, useCache);
    if (!found) return INVALID;
    const { session, databaseNow } = found;
    const now = databaseNow.getTime();
    const { absoluteTimeout, rolling, ttl, activityInterval } = this.options;
    const expires = session.expires.getTime();
    const cap = absoluteTimeout === null ? Infinity : session.created.getTime() + absoluteTimeout;
    const deadline = Math.min(expires, cap);
    if (deadline <= now) {
      await this.store.deleteById(id);
      this.cache.invalidate([id]);
      return INVALID;
    }
    // `expires < cap`: once the absolute cap is the deadline, an UPDATE could not move
    // it, so skipping it keeps the last stretch write-free instead of a write per request.
    if (rolling && expires < cap && deadline - now < ttl / 2) {
      const renewed = await this.store.extend(id, ttl, absoluteTimeout, activityInterval !== null);
      if (renewed) {
        // This instance's entry is stale now; the trigger tells the other instances.
        this.cache.invalidate([id]);
        session.lastSeen = renewed.lastSeen;
        if (renewed.expires.getTime() > expires) {
          session.expires = renewed.expires;
          return {
            valid: true,
            session: this.exposed(session),
            renewedExpires: renewed.expires,
            checkedAt: databaseNow,
          };
        }
      }
    } else if (activityInterval !== null && this.activityDue(session, now)) {
      const touched = await this.store.touch(id, activityInterval);
      if (touched) {
        // As above: the next request here reads the new `lastSeen` (once), instead of finding
        // the activity still due in memory and sending another UPDATE until the NOTIFY arrives.
        this.cache.invalidate([id]);
        session.lastSeen = touched.lastSeen;
      }
    }
    return { valid: true, session: this.exposed(session), renewedExpires: null, checkedAt: databaseNow };
  }

  /** Whether `lastSeen` is `activityInterval` old (or unset) at `now`: the next check moves it. */
  private activityDue(session: Session, now: number): boolean {
    const { activityInterval } = this.options;
    if (activityInterval === null) return false;
    const lastSeen = session.lastSeen?.getTime();
    return lastSeen === undefined || now - lastSeen >= activityInterval;
  }

  /**
   * This instance forgets a session deleted by its `Session.id` (a digest) at once, before
   * the NOTIFY comes back: the digest is the cache's key when ids are hashed; with ids
   * stored as-is the cache cannot tell which entry it was, so it forgets everything.
   */
  private forgetDigest(digest: string): void {
    if (this.options.hashSessionIds) this.cache.invalidate([digest]);
    else this.cache.flush();
  }

  /**
   * The stored id for a value a caller passed as a cookie value, or null when no row can
   * have it: not a possible cookie value, or (ids stored as-is) longer than the id column.
   * Null is answered as "not found" without a query.
   */
  private storedId(cookieValue: unknown): string | null {
    if (!isWellFormedSessionId(cookieValue)) return null;
    if (!this.options.hashSessionIds && cookieValue.length > SESSION_ID_COLUMN_LENGTH) return null;
    return this.toId(cookieValue);
  }

  /**
   * `session` as the service hands it out: with ids stored as-is its `id` (the cookie
   * value) becomes the digest, so no result carries a cookie value (see the class comment).
   */
  private exposed(session: Session): Session {
    if (!this.options.hashSessionIds) session.id = sessionDigest(session.id);
    return session;
  }

  /** The stored id for a cookie value. */
  private toId(cookieValue: string): string {
    return this.options.hashSessionIds ? sessionDigest(cookieValue) : cookieValue;
  }
}

function isValidDate(value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime());
}

function isValidUserId(userId: unknown): userId is string {
  return typeof userId === 'string' && userId.length > 0 && userId.length <= MAX_USER_ID_LENGTH;
}

function assertValidUserId(userId: unknown): asserts userId is string {
  if (!isValidUserId(userId)) {
    throw new InvalidSessionError(
      `Session user must be a non-empty string of at most ${MAX_USER_ID_LENGTH} characters.`,
    );
  }
}
