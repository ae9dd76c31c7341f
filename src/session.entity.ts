import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One row of the `sessions` table.
 *
 * With `hashSessionIds: true` (the default) `id` is the SHA-256 hex digest of the
 * cookie value, never the cookie value itself.
 * @publicApi
 */
@Entity({ name: 'sessions' })
@Index('IDX_sessions_user', ['user'])
@Index('IDX_sessions_expires', ['expires'])
export class Session {
  @PrimaryColumn({ type: 'varchar', length: 255, primaryKeyConstraintName: 'PK_sessions' })
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

  /** True when `expires` is at or before `now` (the application clock unless given). */
  isExpired(now: Date = new Date()): boolean {
    return this.expires.getTime() <= now.getTime();
  }
}
