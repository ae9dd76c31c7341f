import { SessionConfigurationError } from '../errors.js';
import type { SessionModuleOptions } from '../session.module-definition.js';

/** @internal `deviceBinding` as every provider reads it; null when it is off. */
export interface ResolvedDeviceBinding {
  /** Paths as the app routes them, before the global prefix. */
  registrationPath: string;
  refreshPath: string;
  boundCookieName: string;
  boundCookieTtl: number;
  challengeTtl: number;
  /** The session cookie's `SameSite`, which the bound cookie shares. */
  sameSite: 'lax' | 'strict' | 'none';
}

const DEFAULT_REGISTRATION_PATH = '/dbsc/registration';
const DEFAULT_REFRESH_PATH = '/dbsc/refresh';
const DEFAULT_BOUND_COOKIE_TTL_MS = 10 * 60_000;
const DEFAULT_CHALLENGE_TTL_MS = 15 * 60_000;

// A path the header's sf-string and Nest's router both take as-is: no quotes, spaces, `:` or `*`.
const PATH_PATTERN = /^(\/[A-Za-z0-9._~-]+)+$/;
// RFC 6265 token, as for `cookieName`.
const COOKIE_NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** @internal Merges `deviceBinding`'s defaults and throws a `SessionConfigurationError` naming the fix. */
export function resolveDeviceBinding(
  option: SessionModuleOptions['deviceBinding'],
  cookieName: string,
  sameSite: ResolvedDeviceBinding['sameSite'],
): ResolvedDeviceBinding | null {
  if (option === undefined || option === false) return null;
  if (option !== true && (typeof option !== 'object' || option === null)) {
    throw new SessionConfigurationError(
      `deviceBinding must be true, false or { registrationPath, refreshPath, boundCookieName, boundCookieTtl, challengeTtl }, got ${String(option)}.`,
    );
  }
  const settings = option === true ? {} : option;
  const registrationPath = settings.registrationPath ?? DEFAULT_REGISTRATION_PATH;
  const refreshPath = settings.refreshPath ?? DEFAULT_REFRESH_PATH;
  for (const [name, path] of [
    ['registrationPath', registrationPath],
    ['refreshPath', refreshPath],
  ] as const) {
    if (typeof path !== 'string' || !PATH_PATTERN.test(path)) {
      throw new SessionConfigurationError(
        `deviceBinding.${name} ${JSON.stringify(path)} must be a plain path such as '/dbsc/refresh': ` +
          "segments of letters, digits and . _ ~ - (no parameters, wildcards or trailing '/').",
      );
    }
  }
  if (registrationPath === refreshPath) {
    throw new SessionConfigurationError('deviceBinding.registrationPath and refreshPath must differ.');
  }
  const boundCookieName = settings.boundCookieName ?? `__Host-${cookieName}-bound`;
  if (typeof boundCookieName !== 'string' || !COOKIE_NAME_PATTERN.test(boundCookieName)) {
    throw new SessionConfigurationError(
      `deviceBinding.boundCookieName ${JSON.stringify(boundCookieName)} is not a valid cookie name: use letters, digits and !#$%&'*+-.^_\`|~ only.`,
    );
  }
  if (boundCookieName === cookieName) {
    throw new SessionConfigurationError('deviceBinding.boundCookieName must differ from cookieName.');
  }
  const boundCookieTtl = settings.boundCookieTtl ?? DEFAULT_BOUND_COOKIE_TTL_MS;
  if (!isWholeMs(boundCookieTtl, 1000)) {
    throw new SessionConfigurationError(
      `deviceBinding.boundCookieTtl must be a whole number of milliseconds, at least 1000, got ${String(boundCookieTtl)}.`,
    );
  }
  const challengeTtl = settings.challengeTtl ?? Math.max(DEFAULT_CHALLENGE_TTL_MS, boundCookieTtl);
  if (!isWholeMs(challengeTtl, boundCookieTtl)) {
    throw new SessionConfigurationError(
      `deviceBinding.challengeTtl must be a whole number of milliseconds, at least boundCookieTtl (${boundCookieTtl}): ` +
        `the browser signs the challenge a refresh gave it at the next refresh, got ${String(challengeTtl)}.`,
    );
  }
  return { registrationPath, refreshPath, boundCookieName, boundCookieTtl, challengeTtl, sameSite };
}

function isWholeMs(value: unknown, least: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= least;
}
