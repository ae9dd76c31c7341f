import { validateCronExpression } from 'cron';
import {
  DEFAULT_ACTIVITY_INTERVAL_MS,
  DEFAULT_CACHE_HEARTBEAT_MS,
  DEFAULT_CACHE_MAX_ENTRIES,
  DEFAULT_COOKIE_NAME,
  DEFAULT_PURGE_BATCH_SIZE,
  DEFAULT_PURGE_CRON,
  DEFAULT_SESSION_TTL_MS,
} from './session.constants.js';
import { resolveTrustedOrigins } from './http/cross-origin.js';
import { SessionConfigurationError } from './errors.js';
import type { SessionModuleOptions } from './session.module-definition.js';
import type { DeviceInfoPolicy } from './session-device.js';
import { type ResolvedDeviceBinding, resolveDeviceBinding } from './device-binding/device-binding.options.js';
import { isPostgresUrl, type ResolvedReplicaOptions, resolveReplicaOptions } from './replicas/replica-options.js';

/**
 * @internal The options every provider injects: defaults merged once, checked once,
 * so no provider re-derives a default.
 */
export interface ResolvedSessionOptions {
  cookieName: string;
  ttl: number;
  hashSessionIds: boolean;
  resolveUser: (userId: string) => unknown | Promise<unknown>;
  cookie: { secure: boolean; domain?: string; path: string; sameSite: 'lax' | 'strict' | 'none' };
  rolling: boolean;
  absoluteTimeout: number | null;
  deviceInfo: DeviceInfoPolicy;
  /** Null with `activityInterval: false`: `lastSeen` is never moved after login. */
  activityInterval: number | null;
  maxSessionsPerUser: number | null;
  /** `cron` is null with `purge: false`: no schedule, but `purgeExpired()` still works with these limits. */
  purge: { cron: string | null; batchSize: number; maxDurationMs: number | null };
  /** Null when the cache is off (the default). `listenUrl` null: the data source's own connection. */
  cache: { maxEntries: number; listenUrl: string | null; heartbeatMs: number } | null;
  /** Null when `crossOriginProtection: false`; trusted origins normalized as browsers send them. */
  crossOriginProtection: { trustedOrigins: ReadonlySet<string> } | null;
  /** Null when `deviceBinding` is off (the default). */
  deviceBinding: ResolvedDeviceBinding | null;
  /** Null when `readFromReplicas` is off (the default). */
  readFromReplicas: ResolvedReplicaOptions | null;
}

// RFC 6265 token: the characters a cookie name may use.
const COOKIE_NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Cookie attribute values (RFC 6265 av-octet): printable ASCII except `;`.
const COOKIE_ATTRIBUTE_PATTERN = /^[\x20-\x3A\x3C-\x7E]+$/;

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

const defaultResolveUser = (userId: string) => ({ id: userId });

/** @internal Merges defaults into `options` and throws a `SessionConfigurationError` naming the fix. */
export function resolveSessionOptions(
  options: SessionModuleOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedSessionOptions {
  const cookieName = options.cookieName ?? DEFAULT_COOKIE_NAME;
  if (!COOKIE_NAME_PATTERN.test(cookieName)) {
    throw new SessionConfigurationError(
      `cookieName ${JSON.stringify(cookieName)} is not a valid cookie name: use letters, digits and !#$%&'*+-.^_\`|~ only.`,
    );
  }
  const ttl = options.ttl ?? DEFAULT_SESSION_TTL_MS;
  if (!isPositiveInteger(ttl)) {
    throw new SessionConfigurationError(`ttl must be a positive whole number of milliseconds, got ${String(ttl)}.`);
  }
  const absoluteTimeout = options.absoluteTimeout ?? null;
  if (absoluteTimeout !== null && !isPositiveInteger(absoluteTimeout)) {
    throw new SessionConfigurationError(
      `absoluteTimeout must be a positive whole number of milliseconds (or left out), got ${String(absoluteTimeout)}.`,
    );
  }
  if (options.resolveUser !== undefined && typeof options.resolveUser !== 'function') {
    throw new SessionConfigurationError('resolveUser must be a function (userId) => user | null.');
  }
  const sameSite = options.cookie?.sameSite ?? 'lax';
  if (!['lax', 'strict', 'none'].includes(sameSite)) {
    throw new SessionConfigurationError(`cookie.sameSite must be 'lax', 'strict' or 'none', got ${String(sameSite)}.`);
  }
  for (const attribute of ['domain', 'path'] as const) {
    const value = options.cookie?.[attribute];
    // A `;` or control character would end the attribute and smuggle others into Set-Cookie.
    if (value !== undefined && (typeof value !== 'string' || !COOKIE_ATTRIBUTE_PATTERN.test(value))) {
      throw new SessionConfigurationError(
        `cookie.${attribute} ${JSON.stringify(value)} is not a valid cookie attribute: use printable characters other than ';'.`,
      );
    }
  }
  const nodeEnv = env.NODE_ENV;
  const secure = options.cookie?.secure ?? !(nodeEnv === 'development' || nodeEnv === 'test');
  if (sameSite === 'none' && !secure) {
    throw new SessionConfigurationError(
      "cookie.sameSite 'none' requires a Secure cookie (browsers drop it otherwise): set cookie.secure to true.",
    );
  }
  const activityInterval = options.activityInterval ?? DEFAULT_ACTIVITY_INTERVAL_MS;
  if (activityInterval !== false && !isPositiveInteger(activityInterval)) {
    throw new SessionConfigurationError(
      `activityInterval must be a positive whole number of milliseconds, or false, got ${String(activityInterval)}.`,
    );
  }
  const maxSessionsPerUser = options.maxSessionsPerUser ?? null;
  if (maxSessionsPerUser !== null && !isPositiveInteger(maxSessionsPerUser)) {
    throw new SessionConfigurationError(
      `maxSessionsPerUser must be a positive whole number (or left out for no limit), got ${String(maxSessionsPerUser)}.`,
    );
  }
  return {
    cookieName,
    ttl,
    hashSessionIds: options.hashSessionIds ?? true,
    resolveUser: options.resolveUser ?? defaultResolveUser,
    cookie: { secure, domain: options.cookie?.domain, path: options.cookie?.path ?? '/', sameSite },
    rolling: options.rolling ?? false,
    absoluteTimeout,
    deviceInfo: resolveDeviceInfo(options.deviceInfo),
    activityInterval: activityInterval === false ? null : activityInterval,
    maxSessionsPerUser,
    purge: resolvePurgeOptions(options.purge),
    cache: resolveCacheOptions(options.cache),
    crossOriginProtection: resolveCrossOriginProtection(options.crossOriginProtection),
    deviceBinding: resolveDeviceBinding(options.deviceBinding, cookieName, sameSite),
    readFromReplicas: resolveReplicaOptions(options.readFromReplicas, options.cache),
  };
}

function resolveDeviceInfo(deviceInfo: SessionModuleOptions['deviceInfo']): DeviceInfoPolicy {
  if (deviceInfo === false) return { ip: false, userAgent: false };
  const ip = deviceInfo?.ip ?? 'full';
  if (ip !== 'full' && ip !== 'truncated' && ip !== false) {
    throw new SessionConfigurationError(`deviceInfo.ip must be 'full', 'truncated' or false, got ${String(ip)}.`);
  }
  const userAgent = deviceInfo?.userAgent ?? true;
  if (typeof userAgent !== 'boolean') {
    throw new SessionConfigurationError(`deviceInfo.userAgent must be true or false, got ${String(userAgent)}.`);
  }
  return { ip, userAgent };
}

function resolveCacheOptions(cache: SessionModuleOptions['cache']): ResolvedSessionOptions['cache'] {
  if (cache === undefined || cache === false) return null;
  if (cache !== true && (typeof cache !== 'object' || cache === null)) {
    throw new SessionConfigurationError(
      `cache must be true, false or { maxEntries, listenUrl, heartbeatMs }, got ${String(cache)}.`,
    );
  }
  const settings = cache === true ? {} : cache;
  const maxEntries = settings.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES;
  if (!isPositiveInteger(maxEntries)) {
    throw new SessionConfigurationError(`cache.maxEntries must be a positive whole number, got ${String(maxEntries)}.`);
  }
  const heartbeatMs = settings.heartbeatMs ?? DEFAULT_CACHE_HEARTBEAT_MS;
  if (!isPositiveInteger(heartbeatMs) || heartbeatMs < 10) {
    throw new SessionConfigurationError(
      `cache.heartbeatMs must be a whole number of milliseconds, at least 10, got ${String(heartbeatMs)}.`,
    );
  }
  const listenUrl = settings.listenUrl ?? null;
  if (listenUrl !== null && !isPostgresUrl(listenUrl)) {
    throw new SessionConfigurationError(
      `cache.listenUrl must be a postgres:// connection string to the primary (not through PgBouncer in transaction mode), got ${JSON.stringify(listenUrl)}.`,
    );
  }
  return { maxEntries, listenUrl, heartbeatMs };
}

function resolvePurgeOptions(purge: SessionModuleOptions['purge']): ResolvedSessionOptions['purge'] {
  if (purge === false) return { cron: null, batchSize: DEFAULT_PURGE_BATCH_SIZE, maxDurationMs: null };
  const batchSize = purge?.batchSize ?? DEFAULT_PURGE_BATCH_SIZE;
  if (!isPositiveInteger(batchSize)) {
    throw new SessionConfigurationError(`purge.batchSize must be a positive whole number, got ${String(batchSize)}.`);
  }
  const maxDurationMs = purge?.maxDurationMs ?? null;
  if (maxDurationMs !== null && !isPositiveInteger(maxDurationMs)) {
    throw new SessionConfigurationError(
      `purge.maxDurationMs must be a positive whole number of milliseconds (or left out), got ${String(maxDurationMs)}.`,
    );
  }
  const cron = purge?.cron ?? DEFAULT_PURGE_CRON;
  const check = typeof cron === 'string' ? validateCronExpression(cron) : { valid: false };
  if (!check.valid) {
    throw new SessionConfigurationError(
      `purge.cron ${JSON.stringify(cron)} is not a cron expression: use e.g. '0 */10 * * * *' (seconds first), or purge: false.`,
    );
  }
  return { cron, batchSize, maxDurationMs };
}

function resolveCrossOriginProtection(
  option: SessionModuleOptions['crossOriginProtection'],
): ResolvedSessionOptions['crossOriginProtection'] {
  const trustedOrigins = resolveTrustedOrigins(option);
  return trustedOrigins === null ? null : { trustedOrigins };
}
