/** Cookie name used when `cookieName` is not configured (the seed's name). */
export const DEFAULT_COOKIE_NAME = 'session_id';

/** Session lifetime used when `ttl` is not configured: 100 days, as in the seed. */
export const DEFAULT_SESSION_TTL_MS = 100 * 24 * 60 * 60 * 1000;

/** The longest value accepted as a session id; anything longer is rejected without a query. */
export const MAX_SESSION_ID_LENGTH = 1024;

/**
 * @internal Length of the `id` column (`varchar(255)`, as in a Platforma table). With
 * `hashSessionIds: false` the column holds the cookie value itself, so no longer value
 * can be stored or found; hashed ids are 64-character digests whatever the value's length.
 */
export const SESSION_ID_COLUMN_LENGTH = 255;

/** Bytes of `crypto.randomBytes` behind every generated cookie value (256 bits). */
export const SESSION_TOKEN_BYTES = 32;

/** Metadata key set by `@Public()`; namespaced so it cannot collide with other libraries. */
export const PUBLIC_ROUTE_KEY = 'SESSION:PUBLIC';

/** Metadata key set by `@SkipCrossOriginCheck()`. */
export const SKIP_CROSS_ORIGIN_CHECK_KEY = 'SESSION:SKIP_CROSS_ORIGIN_CHECK';

/** Metadata key set by `@RequireRecentLogin(maxAgeMs)`: the most milliseconds since the last login. */
export const RECENT_LOGIN_KEY = 'SESSION:RECENT_LOGIN';

/**
 * The name the purge job is registered under in `SchedulerRegistry` (for a module bound to
 * a named data source: this name, a colon and the data source's name).
 */
export const SESSION_PURGE_JOB_NAME = 'nestjs-typeorm-session:purge';

/** Default purge schedule: every 10 minutes. */
export const DEFAULT_PURGE_CRON = '0 */10 * * * *';

/** Default number of expired rows one purge statement deletes. */
export const DEFAULT_PURGE_BATCH_SIZE = 5000;

/** Sessions the cache keeps when `cache.maxEntries` is not configured. */
export const DEFAULT_CACHE_MAX_ENTRIES = 10_000;

/** Interval of the cache listener's self-heartbeat when `cache.heartbeatMs` is not configured. */
export const DEFAULT_CACHE_HEARTBEAT_MS = 1000;

/** Metadata key set by `@NoSessionCache()`. */
export const NO_SESSION_CACHE_KEY = 'SESSION:NO_CACHE';

/** @internal Injection token of the resolved (defaults merged, validated) options. */
export const SESSION_OPTIONS = Symbol('SESSION_OPTIONS');

/** @internal Injection token aliasing the TypeORM `DataSource` that holds `sessions`. */
export const SESSION_DATA_SOURCE = Symbol('SESSION_DATA_SOURCE');

/** @internal Injection token of the name this module's purge job is registered under. */
export const SESSION_PURGE_JOB = Symbol('SESSION_PURGE_JOB');

/** Default `activityInterval`: `lastSeen` moves at most once per 5 minutes per session. */
export const DEFAULT_ACTIVITY_INTERVAL_MS = 5 * 60 * 1000;

/** Longest stored user agent, in UTF-8 bytes (real ones are 100 to 300); longer ones are cut. */
export const MAX_USER_AGENT_BYTES = 512;
