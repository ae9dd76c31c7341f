/** How the demo configures the package; shown on the home page too. */

/** A session lasts a day from its last use (sliding expiry)... */
export const SESSION_TTL_MS = 24 * 60 * 60 * 1000;
/** ...but never more than a week after it was created. */
export const ABSOLUTE_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;
/** Expired sessions are purged every minute (the package's default is every 10 minutes). */
export const PURGE_CRON = '0 * * * * *';
export const PURGE_DESCRIPTION = 'every minute';

/** Deleting the account needs a login (or a password confirmation) from the last 5 minutes. */
export const RECENT_LOGIN_MS = 5 * 60 * 1000;
export const RECENT_LOGIN_DESCRIPTION = '5 minutes';

export const DEFAULT_PORT = 3000;
/** Loopback only unless HOST says otherwise: a demo should not be reachable from the network by accident. */
export const DEFAULT_HOST = '127.0.0.1';
