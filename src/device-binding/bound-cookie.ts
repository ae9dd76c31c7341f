import type { Session } from '../session.entity.js';
import { readSingleCookieValue, serializeSetCookie } from '../http/session-cookie-header.js';
import { isWellFormedSessionId, sessionDigest } from '../session-token.js';
import type { ResolvedDeviceBinding } from './device-binding.options.js';

/**
 * @internal The bound cookie: 256 random bits that the refresh endpoint hands a device that
 * proved it holds the session's key. The row keeps only its SHA-256 digest and expiry
 * (and those of the one before, for requests still in flight when a refresh replaced it),
 * so the guard checks it with the columns its one primary-key lookup already reads.
 */

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

/**
 * Whether the request carries an unexpired bound cookie of `session`, by the database clock
 * `databaseNow` (the guard's lookup read it, or the cache estimated it). Digests are compared:
 * a digest is not the cookie, and a match needs the cookie itself.
 */
export function carriesBoundCookie(
  cookieHeader: unknown,
  session: Session,
  databaseNow: Date,
  binding: ResolvedDeviceBinding,
): boolean {
  const value = readSingleCookieValue(cookieHeader, binding.boundCookieName);
  if (!isWellFormedSessionId(value)) return false;
  const digest = sessionDigest(value);
  const now = databaseNow.getTime();
  return (
    (session.boundCookie === digest && (session.boundCookieExpires?.getTime() ?? -Infinity) > now) ||
    (session.previousBoundCookie === digest && (session.previousBoundCookieExpires?.getTime() ?? -Infinity) > now)
  );
}

/** The attributes the session instructions declare (the spec compares Domain, Path, Secure, HttpOnly, SameSite). */
export function boundCookieAttributes(binding: ResolvedDeviceBinding): string {
  return `Path=/; Secure; HttpOnly; SameSite=${SAME_SITE[binding.sameSite]}`;
}

/**
 * The bound cookie's `Set-Cookie`: `Secure` always (DBSC needs HTTPS, or localhost, where
 * browsers accept Secure cookies over http), `HttpOnly`, `Path=/`, no `Domain`; lifetime from
 * the database clock of the write. `stored` null clears it.
 */
export function boundCookieSetCookie(
  binding: ResolvedDeviceBinding,
  value: string,
  stored: { boundCookieExpires: Date; databaseNow: Date } | null,
): string {
  const expires = stored?.boundCookieExpires ?? new Date(0);
  const maxAgeSeconds =
    stored === null
      ? 0
      : Math.max(0, Math.floor((stored.boundCookieExpires.getTime() - stored.databaseNow.getTime()) / 1000));
  return serializeSetCookie(binding.boundCookieName, value, expires, maxAgeSeconds, {
    secure: true,
    path: '/',
    sameSite: binding.sameSite,
  });
}
