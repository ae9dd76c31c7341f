import { Inject, Injectable } from '@nestjs/common';
import { SESSION_OPTIONS } from '../session.constants.js';
import type { Session } from '../session.entity.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { SessionReplicaStore } from '../session-replica.store.js';
import { type SessionLookup, SessionStore } from '../session.store.js';
import { RecentInvalidations } from './recent-invalidations.js';
import { type Standby, StandbyWatch } from './standby-watch.js';

/**
 * @internal The reads `readFromReplicas` may serve from a standby — the guard's lookup, `get`,
 * `getUserIdFromSessionId`, `listByUserId` — each falling back to the primary (`SessionStore`)
 * whenever the standby's answer cannot be believed. Believed only: a live session (by the
 * primary's clock), not due for a sliding renewal, that nothing heard within `maxLagMs` names
 * (its id, its user, or a `*`), from a standby whose measured lag was within `maxLagMs` when the
 * answer arrived. Why that suffices: a standby that shows a row revoked at commit time C has
 * not replayed C, so its lag when answering, L, is at least the time since C; the NOTIFY of
 * that commit arrived after C, so if it has arrived it did so at most L ≤ `maxLagMs` ago and
 * is still remembered. "Not found" and "expired" are never believed (a login not yet
 * replicated; a renewal not yet replicated). With the option off, every read is the primary's.
 */
@Injectable()
export class ReplicaReads {
  private readonly enabled: boolean;
  private readonly maxLifetimeMs: number | null;
  private readonly ttl: number;
  private readonly rolling: boolean;
  /** Users who logged in through this instance: their device lists come from the primary for a window. */
  private readonly logins: RecentInvalidations;

  constructor(
    @Inject(SESSION_OPTIONS) options: ResolvedSessionOptions,
    @Inject(SessionStore) private readonly store: SessionStore,
    @Inject(SessionReplicaStore) private readonly sql: SessionReplicaStore,
    @Inject(StandbyWatch) private readonly watch: StandbyWatch,
    @Inject(RecentInvalidations) private readonly recent: RecentInvalidations,
  ) {
    this.enabled = options.readFromReplicas !== null;
    this.maxLifetimeMs = options.absoluteTimeout;
    this.ttl = options.ttl;
    this.rolling = options.rolling;
    this.logins = new RecentInvalidations(options);
  }

  /**
   * The guard's lookup. `mayUseStandby` false (`@NoSessionCache()` routes, which ask for the
   * freshest answer there is): the primary's.
   */
  async lookup(id: string, mayUseStandby = true): Promise<SessionLookup | null> {
    if (this.enabled && mayUseStandby) {
      const believed = await this.fromStandby(id, true);
      if (believed !== null) return believed;
    }
    return this.store.lookup(id);
  }

  /** `SessionService.get`: the session, live or not (only a live one is believed from a standby). */
  async findById(id: string): Promise<Session | null> {
    if (this.enabled) {
      const believed = await this.fromStandby(id, false);
      if (believed !== null) return believed.session;
    }
    return this.store.findById(id);
  }

  /** `SessionService.getUserIdFromSessionId`. */
  async findLiveUser(id: string): Promise<string | null> {
    if (this.enabled) {
      const believed = await this.fromStandby(id, false);
      if (believed !== null) return believed.session.user;
    }
    return this.store.findLiveUser(id, this.maxLifetimeMs);
  }

  /**
   * `SessionService.listByUserId`. Believed when nothing heard names the user or any listed
   * session and the user did not log in through this instance within the window. A login
   * through another instance less than the standby's lag ago (at most `maxLagMs`) can be
   * missing from the list: inserts are not announced (see docs/replicas.md).
   */
  async listLiveByUser(user: string): Promise<Session[]> {
    const standby = this.enabled ? this.watch.pick() : null;
    if (standby !== null && !this.logins.names('', user, performance.now())) {
      try {
        const sessions = await this.watch.withinTimeout(
          this.sql.liveByUser(standby.pool, user, this.maxLifetimeMs, new Date(this.watch.primaryNow())),
        );
        const at = performance.now();
        if (
          this.watch.usable(standby, at) &&
          !this.logins.names('', user, at) &&
          !sessions.some((session) => this.recent.names(session.id, user, at)) &&
          !this.recent.names('', user, at)
        ) {
          standby.served++;
          return sessions;
        }
        standby.dropped++;
      } catch (error) {
        this.watch.failed(standby, error);
      }
    }
    return this.store.findLiveByUser(user, this.maxLifetimeMs, null, 'activity');
  }

  /** A login through this instance: its user's device list is read from the primary for a window. */
  loggedIn(user: string): void {
    if (this.enabled) this.logins.invalidateUser(user);
  }

  /** The standbys and what each served (for tests, the bench and logs). */
  get standbys(): readonly Standby[] {
    return this.watch.standbys;
  }

  /**
   * A standby's answer for `id` when it can be believed (see the class comment), else null.
   * `forGuard`: also refuse one due for a sliding renewal, which only the primary may decide.
   * A standby that errs or is slow is rested; the request goes on to the primary.
   */
  private async fromStandby(id: string, forGuard: boolean): Promise<SessionLookup | null> {
    const standby = this.watch.pick();
    if (standby === null) return null;
    let found: SessionLookup | null;
    try {
      found = await this.watch.withinTimeout(this.store.lookup(id, standby.pool));
    } catch (error) {
      this.watch.failed(standby, error);
      return null;
    }
    const at = performance.now();
    // The standby's clock may differ from the primary's: judge expiry by the later of the two.
    const databaseNow = Math.max(found?.databaseNow.getTime() ?? -Infinity, this.watch.primaryNow());
    if (
      found === null ||
      !this.watch.usable(standby, at) ||
      this.recent.names(id, found.session.user, at) ||
      !this.answersWithoutPrimary(found.session, databaseNow, forGuard)
    ) {
      standby.dropped++;
      return null;
    }
    standby.served++;
    return { session: found.session, databaseNow: new Date(databaseNow) };
  }

  /** Live at `databaseNow` and, for the guard with `rolling`, not due for a renewal (a write the primary decides). */
  private answersWithoutPrimary(session: Session, databaseNow: number, forGuard: boolean): boolean {
    const expires = session.expires.getTime();
    const cap = this.maxLifetimeMs === null ? Infinity : session.created.getTime() + this.maxLifetimeMs;
    const deadline = Math.min(expires, cap);
    if (deadline <= databaseNow) return false;
    return !(forGuard && this.rolling && expires < cap && deadline - databaseNow < this.ttl / 2);
  }
}
