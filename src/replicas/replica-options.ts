import { SessionConfigurationError } from '../errors.js';
import type { SessionModuleOptions } from '../session.module-definition.js';

/** @internal `readFromReplicas` with its defaults merged (see `SessionReplicaOptions`). */
export interface ResolvedReplicaOptions {
  maxLagMs: number;
  checkIntervalMs: number;
  queryTimeoutMs: number;
  /** Where the listener connects when the cache is off; null: the data source's primary. */
  listenUrl: string | null;
}

const DEFAULT_MAX_LAG_MS = 2000;
const DEFAULT_CHECK_INTERVAL_MS = 200;
const DEFAULT_QUERY_TIMEOUT_MS = 1000;

/** @internal Merges `readFromReplicas`'s defaults; throws a `SessionConfigurationError` naming the fix. */
export function resolveReplicaOptions(
  option: SessionModuleOptions['readFromReplicas'],
  cache: SessionModuleOptions['cache'],
): ResolvedReplicaOptions | null {
  if (option === undefined || option === false) return null;
  if (option !== true && (typeof option !== 'object' || option === null)) {
    throw new SessionConfigurationError(
      `readFromReplicas must be true, false or { maxLagMs, checkIntervalMs, queryTimeoutMs, listenUrl }, got ${String(option)}.`,
    );
  }
  const settings = option === true ? {} : option;
  const milliseconds = (name: keyof typeof settings, fallback: number, least: number): number => {
    const value = settings[name] ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < least) {
      throw new SessionConfigurationError(
        `readFromReplicas.${name} must be a whole number of milliseconds, at least ${least}, got ${String(value)}.`,
      );
    }
    return value;
  };
  const checkIntervalMs = milliseconds('checkIntervalMs', DEFAULT_CHECK_INTERVAL_MS, 10);
  const maxLagMs = milliseconds('maxLagMs', DEFAULT_MAX_LAG_MS, 1);
  const queryTimeoutMs = milliseconds('queryTimeoutMs', DEFAULT_QUERY_TIMEOUT_MS, 1);
  // A caught-up standby reads as lagging by up to one interval (the newest sample's age): with
  // maxLagMs at or below it, no standby would ever be used.
  if (maxLagMs <= checkIntervalMs) {
    throw new SessionConfigurationError(
      `readFromReplicas.maxLagMs (${maxLagMs}) must exceed checkIntervalMs (${checkIntervalMs}): the lag of a ` +
        'standby that is caught up reads as up to one interval. Raise maxLagMs or lower checkIntervalMs.',
    );
  }
  const listenUrl = settings.listenUrl ?? null;
  if (listenUrl !== null) {
    if (!isPostgresUrl(listenUrl)) {
      throw new SessionConfigurationError(
        `readFromReplicas.listenUrl must be a postgres:// connection string to the primary, got ${JSON.stringify(listenUrl)}.`,
      );
    }
    if (cache !== undefined && cache !== false) {
      throw new SessionConfigurationError(
        'readFromReplicas.listenUrl is for the cache-off case: with the cache on, one listener serves both; set cache.listenUrl instead.',
      );
    }
  }
  return { maxLagMs, checkIntervalMs, queryTimeoutMs, listenUrl };
}

/** @internal A `postgres:` or `postgresql:` URL: what `listenUrl` (of the cache or the replicas) takes. */
export function isPostgresUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    return ['postgres:', 'postgresql:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}
