import { SessionCache } from '../../src/cache/session-cache.js';
import { Session } from '../../src/index.js';
import { resolveSessionOptions } from '../../src/session.options.js';
import { SessionConfigurationError } from '../../src/index.js';

/**
 * The cache's memory rules, without a database (it holds lookups already read): least
 * recently used leave first, nothing answers until subscribed, an invalidation or a drop
 * between a lookup's start and its fill keeps the fill out, and the database clock decides.
 */
function sessionRow(id: string, expiresInMs: number, databaseNow: number): Session {
  return Object.assign(new Session(), {
    id,
    user: `user-${id}`,
    created: new Date(databaseNow - 1000),
    expires: new Date(databaseNow + expiresInMs),
  });
}

function subscribedCache(maxEntries: number): { cache: SessionCache; databaseNow: number } {
  const cache = new SessionCache(resolveSessionOptions({ cache: { maxEntries } }));
  const databaseNow = Date.UTC(2030, 0, 1); // a database clock far from this machine's
  cache.observeClock(databaseNow, performance.now());
  cache.subscribed();
  return { cache, databaseNow };
}

function fill(cache: SessionCache, id: string, databaseNow: number, expiresInMs = 60_000): void {
  cache.fill(
    id,
    { session: sessionRow(id, expiresInMs, databaseNow), databaseNow: new Date(databaseNow) },
    cache.ticket(),
  );
}

describe('SessionCache', () => {
  it('keeps at most maxEntries, least recently used leave first', () => {
    const { cache, databaseNow } = subscribedCache(3);
    for (const id of ['a', 'b', 'c']) fill(cache, id, databaseNow);
    expect(cache.get('a')).not.toBeNull(); // a used: b is now the oldest
    fill(cache, 'd', databaseNow);
    expect(cache.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((id) => cache.get(id) !== null)).toEqual([true, false, true, true]);
  });

  it('answers nothing before it is subscribed and after it is dropped, and starts empty when back', () => {
    const cache = new SessionCache(resolveSessionOptions({ cache: true }));
    const databaseNow = Date.now();
    cache.observeClock(databaseNow, performance.now());
    fill(cache, 'a', databaseNow);
    expect(cache.usable).toBe(false);
    expect(cache.size).toBe(0);
    cache.subscribed();
    fill(cache, 'a', databaseNow);
    expect(cache.get('a')).not.toBeNull();
    const ticket = cache.ticket();
    cache.unsubscribed();
    expect(cache.usable).toBe(false);
    cache.subscribed();
    expect(cache.size).toBe(0);
    cache.fill('b', { session: sessionRow('b', 60_000, databaseNow), databaseNow: new Date(databaseNow) }, ticket);
    expect(cache.get('b')).toBeNull(); // began before the drop: its answer may predate a lost NOTIFY
  });

  it('never fills after an invalidation that came while the lookup was on its way, for any id', () => {
    const { cache, databaseNow } = subscribedCache(10);
    const ticket = cache.ticket();
    cache.invalidate(['a']);
    cache.fill('a', { session: sessionRow('a', 60_000, databaseNow), databaseNow: new Date(databaseNow) }, ticket);
    expect(cache.get('a')).toBeNull();
    const flushed = cache.ticket();
    cache.flush();
    cache.fill('a', { session: sessionRow('a', 60_000, databaseNow), databaseNow: new Date(databaseNow) }, flushed);
    expect(cache.get('a')).toBeNull();
  });

  it('judges expiry by the database clock, not this machine', () => {
    const { cache, databaseNow } = subscribedCache(10);
    fill(cache, 'soon', databaseNow, 50);
    const hit = cache.get('soon');
    expect(hit!.databaseNow.getTime()).toBeGreaterThanOrEqual(databaseNow);
    expect(hit!.databaseNow.getTime()).toBeLessThan(databaseNow + 50);
    // A row already past its expiry by the database's clock is never kept.
    fill(cache, 'gone', databaseNow, -1);
    expect(cache.get('gone')).toBeNull();
  });

  it('refuses bad settings at startup with the fix', () => {
    expect(() => resolveSessionOptions({ cache: { maxEntries: 0 } })).toThrow(SessionConfigurationError);
    expect(() => resolveSessionOptions({ cache: { maxEntries: 0 } })).toThrow(/cache.maxEntries must be a positive/);
    expect(() => resolveSessionOptions({ cache: { heartbeatMs: 5 } })).toThrow(/cache.heartbeatMs .* at least 10/);
    expect(() => resolveSessionOptions({ cache: { listenUrl: 'localhost:5432' } })).toThrow(/postgres:\/\//);
    expect(() => resolveSessionOptions({ cache: 'yes' as never })).toThrow(/cache must be true, false or/);
    expect(resolveSessionOptions({}).cache).toBeNull();
    expect(resolveSessionOptions({ cache: true }).cache).toEqual({
      maxEntries: 10_000,
      listenUrl: null,
      heartbeatMs: 1000,
    });
  });
});
