import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import type { Server } from 'node:http';
import { SessionCache } from '../../src/cache/session-cache.js';
import { SessionCacheListener } from '../../src/cache/session-cache.listener.js';
import { directUrl } from '../support/cache-modes.js';

/** The cache and its listener inside a booted app (internal classes, read by the cache tests). */
export function cacheOf(app: INestApplication): { cache: SessionCache; listener: SessionCacheListener } {
  return { cache: app.get(SessionCache), listener: app.get(SessionCacheListener) };
}

/** The waiters of each listener: several may wait at once (concurrent requests in one test). */
const waiters = new WeakMap<SessionCacheListener, Set<(payload: string) => void>>();

/**
 * Resolves with the first invalidation payload `accept` takes, after `action` ran; rejects
 * after `timeoutMs` (a trigger that does not fire fails the test instead of hanging it).
 */
export function invalidationAfter(
  listener: SessionCacheListener,
  accept: (payload: string) => boolean,
  timeoutMs = 3000,
): Promise<string> {
  let set = waiters.get(listener);
  if (!set) {
    const created = new Set<(payload: string) => void>();
    waiters.set(listener, created);
    listener.onInvalidation = (payload) => {
      for (const waiter of [...created]) waiter(payload);
    };
    set = created;
  }
  const registered = set;
  return new Promise((resolve, reject) => {
    const waiter = (payload: string) => {
      if (!accept(payload)) return;
      clearTimeout(timer);
      registered.delete(waiter);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      registered.delete(waiter);
      reject(new Error(`no matching invalidation within ${timeoutMs} ms`));
    }, timeoutMs);
    registered.add(waiter);
  });
}

/** The connection the listener uses for a database: direct to the server behind PgBouncer (`listenUrl`). */
export const listenUrlFor = directUrl;

/** GET /me with a cookie value; the status. */
export async function statusOf(server: Server, cookieValue: string, path = '/me'): Promise<number> {
  return (await request(server).get(path).set('Cookie', `session_id=${cookieValue}`)).status;
}
