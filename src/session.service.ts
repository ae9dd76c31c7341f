import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import {
  describeDatabaseError,
  DuplicateSessionError,
  databaseErrorCode,
  InvalidSessionError,
  SessionConfigurationError,
} from './errors.js';
import { SESSION_OPTIONS } from './session.constants.js';
import { Session } from './session.entity.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionStore } from './session.store.js';
import { generateCookieValue, isWellFormedSessionId, sessionDigest } from './session-token.js';

/** Longest user id the `"user"` column holds. */
const MAX_USER_ID_LENGTH = 255;

/** A session just created, with the cookie value that opens it. @publicApi */
export interface IssuedSession {
  /** What goes in the cookie. Never stored when ids are hashed. */
  cookieValue: string;
  /** The stored row (its `id` is the digest when ids are hashed). */
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
 * @publicApi
 */
@Injectable()
export class SessionService implements OnApplicationBootstrap {
  private readonly logger = new Logger('SessionService');

  constructor(
    private readonly store: SessionStore,
    @Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions,
  ) {}

  /**
   * Fails startup with the fix when the `sessions` table is missing, instead of a
   * "relation does not exist" on every request. Any other error (database not yet
   * reachable) is only logged: requests then answer 503 until it is.
   */
  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.store.dataSource.query(`SELECT 1 FROM ${this.store.tableName} LIMIT 0`);
    } catch (error) {
      if (databaseErrorCode(error) === '42P01') {
        throw new SessionConfigurationError(
          `table ${this.store.tableName} does not exist. Run the package's migration: add ` +
            '`...sessionMigrations` to your DataSource `migrations` and run `typeorm migration:run` ' +
            '(or set `migrationsRun: true`).',
        );
      }
      this.logger.warn(`Could not check the sessions table at startup: ${describeDatabaseError(error)}`);
    }
  }

  /**
   * Stores a session whose id the caller chose (the seed's manual path, for custom
   * expiration). `session.id` is the cookie value. `authenticatedAt` defaults to `created`.
   * @throws InvalidSessionError for an empty user, an invalid date, `expires` not after
   *   `created`, or an id that cannot be a cookie value; DuplicateSessionError when the
   *   id exists. Nothing is written in either case.
   */
  async create(session: {
    id: string;
    user: string;
    created: Date;
    expires: Date;
    authenticatedAt?: Date;
  }): Promise<void> {
    if (!isWellFormedSessionId(session?.id)) {
      throw new InvalidSessionError('Session id must be 1 to 1024 cookie-safe characters.');
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
      await this.store.insert({
        id: this.toId(session.id),
        user: session.user,
        created,
        expires: cappedExpires,
        authenticatedAt,
      });
    } catch (error) {
      if (databaseErrorCode(error) === '23505') throw new DuplicateSessionError();
      throw error;
    }
  }

  /** Creates a session for `userId` expiring after `ttl`; returns the cookie value. */
  async createSessionForUser(userId: string): Promise<string> {
    return (await this.issueSession(userId)).cookieValue;
  }

  /** Like `createSessionForUser`, also returning the stored row (for the cookie's expiry). */
  async issueSession(userId: string): Promise<IssuedSession> {
    assertValidUserId(userId);
    const cookieValue = generateCookieValue();
    const session = await this.store.insertNow(
      this.toId(cookieValue),
      userId,
      this.options.ttl,
      this.options.absoluteTimeout,
    );
    return { cookieValue, session };
  }

  /** The session behind a cookie value, expired or not (check `isExpired()`), or null. */
  async get(sessionId: string): Promise<Session | null> {
    if (!isWellFormedSessionId(sessionId)) return null;
    return this.store.findById(this.toId(sessionId));
  }

  /** The user's most recently created live session, or null. */
  async getByUserId(userId: string): Promise<Session | null> {
    if (!isValidUserId(userId)) return null;
    const [newest] = await this.store.findLiveByUser(userId, this.options.absoluteTimeout, 1);
    return newest ?? null;
  }

  /** The user id of a live session, or null when the session is absent or expired. */
  async getUserIdFromSessionId(sessionId: string): Promise<string | null> {
    if (!isWellFormedSessionId(sessionId)) return null;
    return this.store.findLiveUser(this.toId(sessionId), this.options.absoluteTimeout);
  }

  /** Deletes the session behind a cookie value; does nothing when there is none. */
  async deleteSession(sessionId: string): Promise<void> {
    if (!isWellFormedSessionId(sessionId)) return;
    await this.store.deleteById(this.toId(sessionId));
  }

  /** Deletes every session of a user ("log out everywhere"); returns how many. */
  async deleteSessionsByUserId(userId: string): Promise<number> {
    if (!isValidUserId(userId)) return 0;
    return this.store.deleteByUser(userId);
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
    if (!isWellFormedSessionId(sessionId)) return null;
    const cookieValue = generateCookieValue();
    const session = await this.store.replaceId(
      this.toId(sessionId),
      this.toId(cookieValue),
      this.options.absoluteTimeout,
    );
    return session && { cookieValue, session };
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
    if (!isWellFormedSessionId(sessionId)) return null;
    const cookieValue = generateCookieValue();
    const session = await this.store.replaceId(
      this.toId(sessionId),
      this.toId(cookieValue),
      this.options.absoluteTimeout,
      true,
    );
    return session && { cookieValue, session };
  }

  /** A user's live sessions (one per device/browser), newest first. */
  async listByUserId(userId: string): Promise<Session[]> {
    if (!isValidUserId(userId)) return [];
    return this.store.findLiveByUser(userId, this.options.absoluteTimeout, null);
  }

  /**
   * Deletes a session by its stored `Session.id` (what `listByUserId` shows: the
   * digest when ids are hashed), whoever it belongs to: for admin tools. For a user's
   * own "revoke that device", use `deleteUserSession`. Returns whether one was deleted.
   */
  async deleteById(id: string): Promise<boolean> {
    if (!isWellFormedSessionId(id)) return false;
    return (await this.store.deleteById(id)) > 0;
  }

  /**
   * "Revoke that device": deletes the session with stored id `id` (as `listByUserId`
   * lists it) only if it belongs to `userId`, in one statement, so an id taken from
   * someone else's list deletes nothing. Returns whether one was deleted.
   */
  async deleteUserSession(userId: string, id: string): Promise<boolean> {
    if (!isValidUserId(userId) || !isWellFormedSessionId(id)) return false;
    return (await this.store.deleteByIdOfUser(id, userId)) > 0;
  }

  /**
   * Deletes all of a user's sessions except the one behind `keepSessionId` (a cookie
   * value): "log out other devices". Returns how many were deleted.
   */
  async deleteOtherSessions(userId: string, keepSessionId: string): Promise<number> {
    if (!isValidUserId(userId)) return 0;
    const keepId = isWellFormedSessionId(keepSessionId) ? this.toId(keepSessionId) : null;
    return this.store.deleteByUserExcept(userId, keepId);
  }

  /**
   * The guard's check: one primary-key lookup, decided by the database clock. An
   * expired session is deleted; with `rolling`, a session past half its `ttl` is
   * extended. Rejects only when the database fails.
   */
  async validate(sessionId: unknown): Promise<SessionValidation> {
    if (!isWellFormedSessionId(sessionId)) return INVALID;
    const id = this.toId(sessionId);
    const found = await this.store.lookup(id);
    if (!found) return INVALID;
    const { session, databaseNow } = found;
    const now = databaseNow.getTime();
    const { absoluteTimeout, rolling, ttl } = this.options;
    const expires = session.expires.getTime();
    const cap = absoluteTimeout === null ? Infinity : session.created.getTime() + absoluteTimeout;
    const deadline = Math.min(expires, cap);
    if (deadline <= now) {
      await this.store.deleteById(id);
      return INVALID;
    }
    // `expires < cap`: once the absolute cap is the deadline, an UPDATE could not move
    // it, so skipping it keeps the last stretch write-free instead of a write per request.
    if (rolling && expires < cap && deadline - now < ttl / 2) {
      const renewedExpires = await this.store.extend(id, ttl, absoluteTimeout);
      if (renewedExpires && renewedExpires.getTime() > expires) {
        session.expires = renewedExpires;
        return { valid: true, session, renewedExpires, checkedAt: databaseNow };
      }
    }
    return { valid: true, session, renewedExpires: null, checkedAt: databaseNow };
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
