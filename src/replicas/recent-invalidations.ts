import { Inject, Injectable } from '@nestjs/common';
import { SESSION_OPTIONS } from '../session.constants.js';
import type { ResolvedSessionOptions } from '../session.options.js';

/**
 * @internal What this instance heard invalidated in the last `maxLagMs` (the listener's
 * NOTIFYs, and its own writes at once), and since when the listener has been subscribed:
 * what decides whether a standby's answer may be believed (see `ReplicaReads`). Fed by
 * `SessionCache`, which every invalidation already passes through. Times are
 * `performance.now()`, the clock the lag readings use too.
 */
@Injectable()
export class RecentInvalidations {
  /** Stored id → when it was last heard, oldest first (a Map keeps insertion order). */
  private readonly ids = new Map<string, number>();
  /** User → when their sessions were invalidated all at once ("log out everywhere"). */
  private readonly users = new Map<string, number>();
  private flushedAt = -Infinity;
  private subscribed: number | null = null;
  private readonly windowMs: number;
  private readonly enabled: boolean;

  constructor(@Inject(SESSION_OPTIONS) options: ResolvedSessionOptions) {
    this.enabled = options.readFromReplicas !== null;
    this.windowMs = options.readFromReplicas?.maxLagMs ?? 0;
  }

  /**
   * When the listener's current subscription began (after its LISTEN returned), or null while it
   * is not subscribed: notifications sent before it, or while it was down, were never heard.
   */
  get subscribedSince(): number | null {
    return this.subscribed;
  }

  listenerSubscribed(): void {
    this.subscribed = performance.now();
  }

  listenerUnsubscribed(): void {
    this.subscribed = null;
  }

  invalidate(ids: Iterable<string>): void {
    if (!this.enabled) return;
    const now = performance.now();
    for (const id of ids) {
      this.ids.delete(id); // re-inserted last: the map stays ordered by time
      this.ids.set(id, now);
    }
    this.forgetOlder(this.ids, now);
  }

  invalidateUser(user: string): void {
    if (!this.enabled) return;
    const now = performance.now();
    this.users.delete(user);
    this.users.set(user, now);
    this.forgetOlder(this.users, now);
  }

  /** A `*` (mass revocation, TRUNCATE): no standby answer is believed for a window. */
  flush(): void {
    if (this.enabled) this.flushedAt = performance.now();
  }

  /** Whether something heard within the window, up to `at`, names session `id` or `user`. */
  names(id: string, user: string, at: number): boolean {
    const recent = (heard: number | undefined) => heard !== undefined && at - heard <= this.windowMs;
    return recent(this.flushedAt) || recent(this.ids.get(id)) || recent(this.users.get(user));
  }

  /** How many ids and users are remembered (for the scaling figures). */
  get size(): number {
    return this.ids.size + this.users.size;
  }

  private forgetOlder(heard: Map<string, number>, now: number): void {
    for (const [key, at] of heard) {
      if (now - at <= this.windowMs) break;
      heard.delete(key);
    }
  }
}
