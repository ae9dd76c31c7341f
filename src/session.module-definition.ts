import { ConfigurableModuleBuilder } from '@nestjs/common';

/** Cookie attributes of the session cookie set by `SessionCookies`. @publicApi */
export interface SessionCookieOptions {
  /** `Secure` attribute. Default: true, except when `NODE_ENV` is `development` or `test`. */
  secure?: boolean;
  /** `Domain` attribute. Default: none (host-only cookie). */
  domain?: string;
  /** `Path` attribute. Default: `/`. */
  path?: string;
  /** `SameSite` attribute. Default: `lax`. */
  sameSite?: 'lax' | 'strict' | 'none';
}

/** Options of the purge cron. @publicApi */
export interface SessionPurgeOptions {
  /** Cron expression (with seconds). Default: every 10 minutes, `0 *\/10 * * * *`. */
  cron?: string;
  /** Most expired rows one statement deletes; each batch is its own transaction. Default: 5000. */
  batchSize?: number;
  /** A run stops starting new batches after this many ms. Default: no limit. */
  maxDurationMs?: number;
}

/**
 * What the module stores about the device a session was opened from (`Session.ip`,
 * `Session.userAgent`). @publicApi
 */
export interface SessionDeviceInfoOptions {
  /**
   * `'full'` (default): the address as the platform reports it. `'truncated'`: only its
   * network, IPv4 /24 (`203.0.113.0`), IPv6 /48 (`2001:db8:85a3::`), for apps that must keep
   * less personal data. `false`: no address.
   */
  ip?: 'full' | 'truncated' | false;
  /** Store the `User-Agent` header (cleaned, at most 512 bytes). Default: true. */
  userAgent?: boolean;
}

/**
 * Options of the in-process session cache (`cache: { ... }`; `cache: true` takes every default).
 * Needs the package's `AddSessionCacheTrigger1770500000000` migration. See docs/cache.md.
 * @publicApi
 */
export interface SessionCacheOptions {
  /** Most sessions kept in memory; the least recently used leave first. Default: 10,000 (about 6 MB; 100,000 take about 63 MB: `npm run bench:cache-memory`). */
  maxEntries?: number;
  /**
   * Connection string the invalidation listener uses instead of the data source's own
   * connection options: set it to the primary, directly, when the app's queries go
   * through PgBouncer in transaction mode (LISTEN does not work there). Default: the
   * data source's connection (its primary with replication).
   */
  listenUrl?: string;
  /**
   * How often the listener NOTIFYs itself; when its own heartbeat has not come back
   * within two intervals the cache is bypassed and the connection replaced. Default: 1000.
   */
  heartbeatMs?: number;
}

/**
 * Options of `readFromReplicas: { ... }` (`readFromReplicas: true` takes every default).
 * See docs/replicas.md.
 * @publicApi
 */
export interface SessionReplicaOptions {
  /**
   * A standby is used only while its replay lag, measured against the primary's WAL position,
   * is at most this many ms; the instance remembers every invalidation it hears for as long,
   * so no answer from a standby can be older than what it remembers. Default: 2000.
   */
  maxLagMs?: number;
  /** How often the primary's WAL position is sampled and each standby's replay position read. Default: 200. */
  checkIntervalMs?: number;
  /** A standby answer slower than this is dropped for the primary's, and the standby rested until its next check. Default: 1000. */
  queryTimeoutMs?: number;
  /**
   * With the cache off, where the invalidation listener connects (the primary, directly,
   * when queries go through PgBouncer in transaction mode). With the cache on, set
   * `cache.listenUrl` instead. Default: the data source's primary.
   */
  listenUrl?: string;
}

/**
 * Options of `SessionModule.forRoot()` / the factory of `forRootAsync()`. All optional.
 * @publicApi
 */
export interface SessionModuleOptions {
  /** Name of the session cookie. Default: `session_id`. */
  cookieName?: string;
  /** Session lifetime in ms. Default: 100 days. */
  ttl?: number;
  /**
   * Store the SHA-256 digest of the cookie value instead of the value itself, so a
   * read-only leak of the table lets no one in. Default: true. `false` stores cookie
   * values as-is (compatible with an existing Platforma `sessions` table).
   */
  hashSessionIds?: boolean;
  /**
   * What `AuthGuard` attaches as `request.user`, given the session's user id
   * (e.g. load the user entity). Returning any falsy value (null, undefined, false, 0,
   * '') means the user is gone: 401.
   * Default: `{ id: userId }`.
   */
  resolveUser?: (userId: string) => unknown | Promise<unknown>;
  /** Attributes of the session cookie. */
  cookie?: SessionCookieOptions;
  /**
   * Sliding expiry: when a session is used with less than half of `ttl` left, push
   * `expires` to now + `ttl` and refresh the cookie. Default: false.
   */
  rolling?: boolean;
  /** No session outlives `created + absoluteTimeout` ms, rolling or not. Default: none. */
  absoluteTimeout?: number;
  /**
   * What to store about the device at login; `false` stores neither address nor user
   * agent. Default: `{ ip: 'full', userAgent: true }`.
   */
  deviceInfo?: false | SessionDeviceInfoOptions;
  /**
   * `Session.lastSeen` moves when the guard lets a session through, at most once per this
   * many ms per session (one UPDATE, shared with a sliding renewal when both are due).
   * `false`: `lastSeen` stays the login time. Default: 5 minutes.
   */
  activityInterval?: number | false;
  /**
   * Most live sessions one user may have: a login beyond it deletes the user's least
   * recently used sessions in the statement that inserts the new one, so concurrent
   * logins never leave more. Default: no limit.
   */
  maxSessionsPerUser?: number;
  /** The expired-session purge cron; `false` disables it. Default: enabled with defaults. */
  purge?: false | SessionPurgeOptions;
  /**
   * Answer the guard from memory for sessions it has seen, invalidated on every instance
   * through PostgreSQL LISTEN/NOTIFY (a trigger the package's migration installs); while the
   * listener is not subscribed every lookup goes to the database. `true` takes the defaults.
   * Default: false (one query per guarded request). See docs/cache.md.
   */
  cache?: boolean | SessionCacheOptions;
  /**
   * `AuthGuard` refuses (403, `code: 'CROSS_ORIGIN_REQUEST'`) state-changing requests that
   * another origin made (forged cross-site requests), from `Sec-Fetch-Site`, else `Origin`
   * vs `Host`, as Go's `net/http.CrossOriginProtection`; checked before the session lookup, on
   * every route the guard runs on, `@Public()` ones included (exempt one with
   * `@SkipCrossOriginCheck()`). `{ trustedOrigins }` lists origins allowed to post anyway
   * (`https://admin.example.com`). Default: true. `false` turns it off.
   */
  crossOriginProtection?: boolean | SessionCrossOriginOptions;
  /**
   * Serve the guard's lookups (the cache's misses, with `cache` on), `get`,
   * `getUserIdFromSessionId` and `listByUserId` from a standby of the data source's
   * `replication.slaves`; writes stay on the primary. A standby's answer is used only when it
   * is a live session that no invalidation heard within `maxLagMs` names, from a standby whose
   * measured lag is within `maxLagMs`; anything else is asked of the primary. Needs the
   * cache-trigger migration (its listener runs even with the cache off). Default: false.
   * See docs/replicas.md.
   */
  readFromReplicas?: boolean | SessionReplicaOptions;
  /**
   * Device Bound Session Credentials (W3C DBSC): `SessionCookies.login` asks the browser to
   * bind the session to a key its security chip keeps, and the module serves the
   * registration and refresh endpoints itself. A bound session then also needs a short-lived
   * bound cookie that only that device can renew: a copied session cookie stops working on
   * another machine. Browsers without DBSC ignore it. `true` takes the defaults.
   * Default: false. See docs/device-binding.md.
   */
  deviceBinding?: boolean | SessionDeviceBindingOptions;
}

/** Options of `deviceBinding`. @publicApi */
export interface SessionDeviceBindingOptions {
  /**
   * Path of the registration endpoint the module serves (POST), relative to the app's global
   * prefix like a controller route. Default: '/dbsc/registration'.
   */
  registrationPath?: string;
  /** Path of the refresh endpoint (POST), relative to the global prefix. Default: '/dbsc/refresh'. */
  refreshPath?: string;
  /**
   * Name of the short-lived bound cookie (always `Secure`, `HttpOnly`, `Path=/`, no `Domain`).
   * Default: `__Host-` + the session cookie's name + `-bound`.
   */
  boundCookieName?: string;
  /** Lifetime of a bound cookie, in ms: how long a stolen one keeps working. Default: 10 minutes. */
  boundCookieTtl?: number;
  /**
   * Lifetime of a challenge, in ms; at least `boundCookieTtl`, since the browser keeps the
   * challenge a refresh handed it until the next refresh. Default: 15 minutes.
   */
  challengeTtl?: number;
}

/** Options of `crossOriginProtection`. @publicApi */
export interface SessionCrossOriginOptions {
  /** Origins (`scheme://host[:port]`) whose requests pass although they are cross-origin. Default: none. */
  trustedOrigins?: string[];
}

/**
 * Settings that shape the module itself; with `forRootAsync` they sit beside the
 * factory, not in what it returns.
 * @publicApi
 */
export interface SessionModuleExtras {
  /** Name of the TypeORM data source holding `sessions` (multi-connection apps). Default: the default one. */
  dataSource?: string;
  /** Register `AuthGuard` as a global `APP_GUARD` (exempt routes with `@Public()`). Default: false. */
  globalGuard?: boolean;
  /** Make `SessionService` and friends injectable everywhere without importing the module. Default: false. */
  isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: SESSION_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SessionModuleOptions>({ moduleName: 'Session' })
  .setClassMethodName('forRoot')
  .setExtras<SessionModuleExtras>(
    { dataSource: undefined, globalGuard: false, isGlobal: false },
    (definition) => definition, // applied in SessionModule, which needs the extras to build its imports
  )
  .build();

/** What `SessionModule.forRoot()` accepts. @publicApi */
export type SessionModuleForRootOptions = typeof OPTIONS_TYPE;
/** What `SessionModule.forRootAsync()` accepts. @publicApi */
export type SessionModuleAsyncOptions = typeof ASYNC_OPTIONS_TYPE;
