import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { SESSION_ID_COLUMN_LENGTH } from './session.constants.js';

/**
 * One row of the `sessions` table.
 *
 * With `hashSessionIds: true` (the default) the `id` column holds the SHA-256 hex digest
 * of the cookie value, never the cookie value itself; with `false` it holds the value.
 * Sessions that `SessionService` (and so `@CurrentSession()`) hands out have the digest
 * as `id` in both modes; the exported repository reads the column as stored.
 * @publicApi
 */
@Entity({ name: 'sessions' })
@Index('IDX_sessions_user', ['user'])
@Index('IDX_sessions_expires', ['expires'])
// ("user", coalesce(last_seen, created)): an expression index, created by the migration
// (synchronize would otherwise drop it).
@Index('IDX_sessions_user_activity', { synchronize: false })
export class Session {
  @PrimaryColumn({ type: 'varchar', length: SESSION_ID_COLUMN_LENGTH, primaryKeyConstraintName: 'PK_sessions' })
  id!: string;

  /** The user id the session belongs to (`"user"` is quoted in SQL: it is a reserved word). */
  @Column({ type: 'varchar', length: 255 })
  user!: string;

  @Column({ type: 'timestamptz' })
  created!: Date;

  @Column({ type: 'timestamptz' })
  expires!: Date;

  /**
   * When the user last proved who they are: the login that created the session, or the
   * last `SessionService.reauthenticate`. `rotate` keeps it; sliding expiry never moves it.
   * `@RequireRecentLogin(maxAgeMs)` measures from it. (Nullable in SQL only so that an
   * instance still running the previous version can insert rows during a rolling deploy;
   * the package reads a NULL as `created`, and always returns a Date here.)
   */
  @Column({ type: 'timestamptz', name: 'authenticated_at', nullable: true })
  authenticatedAt!: Date;

  /**
   * The `User-Agent` of the login request (control characters removed, at most 512
   * bytes), kept as sent: parse it for display. Null for sessions created without one,
   * before this column existed, or with `deviceInfo.userAgent: false`.
   */
  @Column({ name: 'user_agent', type: 'varchar', length: 512, nullable: true })
  userAgent!: string | null;

  /**
   * The client address of the login request as the platform reports it (Express `req.ip`,
   * Fastify `request.ip`: behind a proxy, only if the app trusts it), or its network with
   * `deviceInfo.ip: 'truncated'`. Null when unknown or not stored.
   */
  @Column({ type: 'varchar', length: 64, nullable: true })
  ip!: string | null;

  /**
   * When the session was last used (database clock): set at login, moved by `AuthGuard`
   * at most once per `activityInterval`. Null for sessions from before this column until
   * their next use.
   */
  @Column({ name: 'last_seen', type: 'timestamptz', nullable: true })
  lastSeen!: Date | null;

  /**
   * Whether the session is bound to a device key (`deviceBinding`, DBSC): it then needs the
   * short-lived bound cookie too, which only that device can renew. Set on the sessions
   * `SessionService` and the guard hand out (not a column: read from `device_key`).
   */
  deviceBound: boolean = false;

  /** @internal The device's public key (a P-256 JWK) once the browser registered; null before. */
  @Column({ name: 'device_key', type: 'jsonb', nullable: true, select: false })
  deviceKey!: object | null;

  /** @internal The DBSC session identifier the browser names this session by (kept across rotations). */
  @Column({ name: 'device_session_id', type: 'varchar', length: 64, nullable: true, select: false })
  deviceSessionId!: string | null;

  /** @internal SHA-256 hex digest of the current bound cookie. */
  @Column({ name: 'bound_cookie', type: 'varchar', length: 64, nullable: true, select: false })
  boundCookie!: string | null;

  /** @internal When the current bound cookie stops opening the session (database clock). */
  @Column({ name: 'bound_cookie_expires', type: 'timestamptz', nullable: true, select: false })
  boundCookieExpires!: Date | null;

  /** @internal The bound cookie before the last refresh, accepted until its own expiry (requests in flight). */
  @Column({ name: 'previous_bound_cookie', type: 'varchar', length: 64, nullable: true, select: false })
  previousBoundCookie!: string | null;

  /** @internal Expiry of `previousBoundCookie`. */
  @Column({ name: 'previous_bound_cookie_expires', type: 'timestamptz', nullable: true, select: false })
  previousBoundCookieExpires!: Date | null;

  /** @internal The challenges still open: `[{ value, expires }]`, `expires` in epoch ms (database clock). */
  @Column({ name: 'device_challenges', type: 'jsonb', nullable: true, select: false })
  deviceChallenges!: { value: string; expires: number }[] | null;

  /** True when `expires` is at or before `now` (the application clock unless given). */
  isExpired(now: Date = new Date()): boolean {
    return this.expires.getTime() <= now.getTime();
  }
}
