import { hash, randomBytes } from 'node:crypto';
import { MAX_SESSION_ID_LENGTH, SESSION_TOKEN_BYTES } from './session.constants.js';

/**
 * RFC 6265 cookie-octets: printable ASCII without space, `"`, `,`, `;` and `\`.
 * A value outside this set cannot have come from a cookie this module set, so it
 * is rejected before any query is made.
 */
const COOKIE_VALUE_PATTERN = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;

/** @internal A fresh cookie value: 256 random bits, base64url (43 characters). */
export function generateCookieValue(): string {
  return randomBytes(SESSION_TOKEN_BYTES).toString('base64url');
}

/** @internal SHA-256 hex digest of a cookie value: what the `id` column holds when ids are hashed. */
export function sessionDigest(cookieValue: string): string {
  // One-shot `hash` (Node ≥ 20.12): no Hash object per request, about half the cost on the guard's path.
  return hash('sha256', cookieValue, 'hex');
}

/** @internal True when `value` could be a `Session.id` as the service hands it out: a lowercase SHA-256 hex digest. */
export function isSessionDigest(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

/**
 * @internal True when `value` could be a session cookie value: a non-empty string of
 * at most 1024 cookie-octets. Anything else is answered without touching the database.
 */
export function isWellFormedSessionId(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_SESSION_ID_LENGTH &&
    COOKIE_VALUE_PATTERN.test(value)
  );
}
