import { Inject, Injectable, Optional } from '@nestjs/common';
import { SESSION_OPTIONS } from '../session.constants.js';
import { Session } from '../session.entity.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import type { SessionLookup } from '../session.store.js';
import { RecentInvalidations } from '../replicas/recent-invalidations.js';

/**
 * @internal Taken before a lookup is sent: its answer may fill the cache only if no
 * invalidation arrived meanwhile (`generation`), and `sentAt` bounds the database clock.
 */
export interface CacheTicket {
  readonly generation: number;
  readonly sentAt: number;
}

/** How long one bucket of clock observations lasts (the offset is the lowest of two buckets). */
const CLOCK_WINDOW_MS = 10_000;

/**
 * @internal The guard's lookups, kept in memory per stored session id (least recently used
 * leave first beyond `maxEntries`). Correct only while the listener is subscribed, so it
 * answers nothing until `subscribed()` and after `unsubscribed()`; every invalidation,
 * flush and (un)subscription bumps a generation that in-flight lookups must still match to
 * fill (no stale fill). Expiry is judged by the database clock: the offset between the
 * database's `now()` and `performance.now()` (which fake `Date`s and wall-clock steps do not
 * move), kept from the round trips the package already makes.
 * Every invalidation and (un)subscription passes through here, so it is handed on to
 * `RecentInvalidations` too: what decides whether a standby's answer may be believed
 * (`readFromReplicas`, which works with the cache off as well).
 */
@Injectable()
export class SessionCache {
  private readonly entries = new Map<string, Session>();
  private generation = 0;
  private live = false;
  /** Database epoch ms minus `performance.now()`: the lowest seen in this and the previous window. */
  private offsets = { previous: Infinity, current: Infinity, windowStart: 0 };
  private readonly maxEntries: number;
  private readonly enabled: boolean;
  private readonly ttl: number;
  private readonly rolling: boolean;
  private readonly absoluteTimeout: number | null;

  constructor(
    @Inject(SESSION_OPTIONS) options: ResolvedSessionOptions,
    @Optional() @Inject(RecentInvalidations) private readonly recent: RecentInvalidations | null = null,
  ) {
    this.enabled = options.cache !== null;
    this.maxEntries = options.cache?.maxEntries ?? 0;
    this.ttl = options.ttl;
    this.rolling = options.rolling;
    this.absoluteTimeout = options.absoluteTimeout;
  }

  /** Whether lookups may be answered from memory now: on, subscribed, and a database clock known. */
  get usable(): boolean {
    return this.live && this.offsetMs() !== Infinity;
  }

  /** How many sessions are kept. */
  get size(): number {
    return this.entries.size;
  }

  /** Whether the listener is subscribed (for logs and tests). */
  get subscribedNow(): boolean {
    return this.live;
  }

  /**
   * A copy of the cached lookup, or null when there is none or the guard would need the
   * database for it: past its deadline, or due for a sliding renewal.
   */
  get(id: string): SessionLookup | null {
    const session = this.entries.get(id);
    if (session === undefined) return null;
    const databaseNow = performance.now() + this.offsetMs();
    if (!this.answersWithoutDatabase(session, databaseNow)) {
      this.entries.delete(id);
      return null;
    }
    this.entries.delete(id); // re-inserted last: most recently used
    this.entries.set(id, session);
    return { session: copy(session), databaseNow: new Date(databaseNow) };
  }

  ticket(): CacheTicket {
    return { generation: this.generation, sentAt: performance.now() };
  }

  /** Keeps `lookup` unless an invalidation (or a drop of the listener) came after `ticket`. */
  fill(id: string, lookup: SessionLookup, ticket: CacheTicket): void {
    this.observeClock(lookup.databaseNow.getTime(), ticket.sentAt);
    if (!this.live || ticket.generation !== this.generation) return;
    if (!this.answersWithoutDatabase(lookup.session, lookup.databaseNow.getTime())) return;
    this.entries.delete(id);
    this.entries.set(id, copy(lookup.session));
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Forgets these stored ids (a NOTIFY, or this instance's own write). */
  invalidate(ids: Iterable<string>): void {
    this.generation++;
    const list = [...ids];
    for (const id of list) this.entries.delete(id);
    this.recent?.invalidate(list);
  }

  /** Forgets a user's sessions, except `keepId` (this instance's "log out everywhere"). */
  invalidateUser(user: string, keepId: string | null = null): void {
    this.generation++;
    this.recent?.invalidateUser(user);
    for (const [id, session] of this.entries) if (session.user === user && id !== keepId) this.entries.delete(id);
  }

  /** Forgets everything. */
  flush(): void {
    this.clear();
    this.recent?.flush();
  }

  /** The listener is subscribed: notifications sent before were lost, so start empty. */
  subscribed(): void {
    this.recent?.listenerSubscribed();
    if (!this.enabled) return;
    this.clear();
    this.live = true;
  }

  /** The listener dropped or went silent: answer nothing from memory until it is back. */
  unsubscribed(): void {
    this.recent?.listenerUnsubscribed();
    this.live = false;
    this.clear();
  }

  private clear(): void {
    this.generation++;
    this.entries.clear();
  }

  /**
   * One observation of the database clock: `databaseNow` was read after `sentAt`, so
   * `databaseNow - sentAt` is never below the true offset. The lowest recent one is kept
   * (tightest, still early rather than late); windows let it follow a clock that moves.
   */
  observeClock(databaseNow: number, sentAt: number): void {
    const offset = databaseNow - sentAt;
    const now = performance.now();
    if (now - this.offsets.windowStart > CLOCK_WINDOW_MS) {
      this.offsets = { previous: this.offsets.current, current: offset, windowStart: now };
    } else if (offset < this.offsets.current) {
      this.offsets.current = offset;
    }
  }

  private offsetMs(): number {
    return Math.min(this.offsets.previous, this.offsets.current);
  }

  /** What `SessionService.validate` would accept without a write: live, and not due for renewal. */
  private answersWithoutDatabase(session: Session, databaseNow: number): boolean {
    const expires = session.expires.getTime();
    const cap = this.absoluteTimeout === null ? Infinity : session.created.getTime() + this.absoluteTimeout;
    const deadline = Math.min(expires, cap);
    if (deadline <= databaseNow) return false;
    return !(this.rolling && expires < cap && deadline - databaseNow < this.ttl / 2);
  }
}

/** A fresh `Session` per request (handlers may change theirs); every field the lookup read is kept. */
function copy(session: Session): Session {
  return Object.assign(new Session(), session);
}
