import type { ReplicaReads } from '../replicas/replica-reads.js';
import type { SessionLookup } from '../session.store.js';
import type { SessionCache } from './session-cache.js';

/**
 * @internal The one place that decides "cache or database" for the guard's lookup: from
 * memory only when the caller allows it and the cache is usable (on, its listener
 * subscribed); otherwise the database, whose answer fills the cache unless an
 * invalidation arrived while it was on its way. The database is the primary, or a standby
 * with `readFromReplicas` (`ReplicaReads` decides; never for a `@NoSessionCache()` route).
 */
export async function lookupSession(
  reads: Pick<ReplicaReads, 'lookup'>,
  cache: SessionCache,
  id: string,
  useCache: boolean,
): Promise<SessionLookup | null> {
  if (!useCache || !cache.usable) {
    const ticket = cache.ticket();
    const found = await reads.lookup(id, useCache);
    if (found) cache.observeClock(found.databaseNow.getTime(), ticket.sentAt);
    return found;
  }
  const cached = cache.get(id);
  if (cached) return cached;
  const ticket = cache.ticket();
  const found = await reads.lookup(id);
  if (found) cache.fill(id, found, ticket);
  return found;
}
