import { ForbiddenException } from '@nestjs/common';
import type { CrossOriginReason } from './cross-origin.js';

/**
 * The `code` of the 403 body `AuthGuard` sends for a request another origin made
 * (`crossOriginProtection`). Stable: match on it, not on the message.
 * @publicApi
 */
export const CROSS_ORIGIN_REQUEST = 'CROSS_ORIGIN_REQUEST';

/**
 * The `code` of the 403 body `AuthGuard` sends on a `@RequireRecentLogin()` route when the
 * session's last login is too old: show a password prompt, then call
 * `SessionCookies.reauthenticate`. Stable: match on it, not on the message.
 * @publicApi
 */
export const RECENT_LOGIN_REQUIRED = 'RECENT_LOGIN_REQUIRED';

const CROSS_ORIGIN_MESSAGES: Record<CrossOriginReason, string> = {
  'sec-fetch-site': 'Cross-origin request refused: the browser says it came from another origin (Sec-Fetch-Site).',
  'origin-mismatch': 'Cross-origin request refused: its Origin does not match the host it was sent to.',
};

/**
 * 403 for a state-changing request made from another origin. Body:
 * `{ statusCode: 403, error: 'Forbidden', code: 'CROSS_ORIGIN_REQUEST', reason, message }`,
 * `reason` being `'sec-fetch-site'` or `'origin-mismatch'` (which header gave it away).
 * @publicApi
 */
export class CrossOriginRequestException extends ForbiddenException {
  constructor(readonly reason: CrossOriginReason) {
    super({
      statusCode: 403,
      error: 'Forbidden',
      code: CROSS_ORIGIN_REQUEST,
      reason,
      message: CROSS_ORIGIN_MESSAGES[reason],
    });
  }
}

/**
 * 403 for a live session whose last login (`Session.authenticatedAt`) is older than the
 * route's `@RequireRecentLogin(maxAgeMs)`. Distinct from the 401 of "no session". Body:
 * `{ statusCode: 403, error: 'Forbidden', code: 'RECENT_LOGIN_REQUIRED', maxAgeMs, message }`.
 * @publicApi
 */
export class RecentLoginRequiredException extends ForbiddenException {
  constructor(readonly maxAgeMs: number) {
    super({
      statusCode: 403,
      error: 'Forbidden',
      code: RECENT_LOGIN_REQUIRED,
      maxAgeMs,
      message: 'Re-authentication required: confirm your password to continue.',
    });
  }
}
