import type { SessionLookup, SessionStore } from '../session.store.js';
import type { SessionCache } from './session-cache.js';

/**
 * @internal The one place that decides "cache or database" for the guard's lookup: from
 * memory only when the caller allows it and the cache is usable (on, its listener
 * subscribed); otherwise the database, whose answer fills the cache unless an
 * invalidation arrived while it was on its way.
 */
export async function lookupSession(
  store: SessionStore,
  cache: SessionCache,
  id: string,
  useCache: boolean,
): Promise<SessionLookup | null> {
  if (!useCache || !cache.usable) {
    const ticket = cache.ticket();
    const found = await store.lookup(id);
    if (found) cache.observeClock(found.databaseNow.getTime(), ticket.sentAt);
    return found;
  }
  const cached = cache.get(id);
  if (cached) return cached;
  const ticket = cache.ticket();
  const found = await store.lookup(id);
  if (found) cache.fill(id, found, ticket);
  return found;
}
