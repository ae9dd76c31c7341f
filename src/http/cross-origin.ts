import { SessionConfigurationError } from '../errors.js';

/**
 * @internal Cross-origin request protection, the algorithm of Go 1.25's
 * `net/http.CrossOriginProtection` (`Check`), on the request headers alone:
 *
 * 1. `GET`, `HEAD` and `OPTIONS` always pass (safe methods: they must not change state).
 * 2. `Sec-Fetch-Site: same-origin` or `none` (typed in the address bar, a bookmark) passes;
 *    any other value (`cross-site`, `same-site`) is refused unless `Origin` is trusted.
 * 3. Without `Sec-Fetch-Site` (browsers before 2023): no `Origin` passes (same-origin, or not
 *    a browser); an `Origin` whose host equals `Host` passes; anything else (another host,
 *    `null`, unparsable) is refused unless trusted.
 *
 * Like Go, step 3 ignores the scheme (`Host` has none): an http page posting to the https
 * site passes it; HSTS closes that gap, and every current browser takes step 2 anyway.
 */

/** Why `crossOriginProtection` refused a request: which of the two headers told. @publicApi */
export type CrossOriginReason = 'sec-fetch-site' | 'origin-mismatch';

/** @internal The headers the check reads (Node lower-cases header names, on Express and Fastify alike). */
export interface CrossOriginHeaders {
  host?: string | string[];
  origin?: string | string[];
  'sec-fetch-site'?: string | string[];
  ':authority'?: string | string[];
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** @internal The reason to refuse the request, or null when it may go on. */
export function crossOriginRefusal(
  method: string | undefined,
  headers: CrossOriginHeaders,
  trustedOrigins: ReadonlySet<string>,
): CrossOriginReason | null {
  if (method !== undefined && SAFE_METHODS.has(method)) return null;
  const site = headerText(headers['sec-fetch-site']);
  const origin = headerText(headers.origin);
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return null;
    return origin !== undefined && trustedOrigins.has(origin) ? null : 'sec-fetch-site';
  }
  if (origin === undefined) return null;
  const host = headerText(headers.host) ?? headerText(headers[':authority']);
  if (host !== undefined && originHost(origin) === host.toLowerCase()) return null;
  return trustedOrigins.has(origin) ? null : 'origin-mismatch';
}

/**
 * @internal The validated, normalized trusted origins of the `crossOriginProtection` option,
 * or null when the protection is off.
 * @throws SessionConfigurationError for anything that is not `scheme://host[:port]`.
 */
export function resolveTrustedOrigins(
  option: boolean | { trustedOrigins?: readonly string[] } | undefined,
): ReadonlySet<string> | null {
  if (option === false) return null;
  if (option === undefined || option === true) return new Set();
  if (typeof option !== 'object' || option === null) {
    throw new SessionConfigurationError(
      `crossOriginProtection must be true, false or { trustedOrigins: [...] }, got ${String(option)}.`,
    );
  }
  const listed = option.trustedOrigins ?? [];
  if (!Array.isArray(listed)) {
    throw new SessionConfigurationError(
      "crossOriginProtection.trustedOrigins must be an array of origins, e.g. ['https://app.example.com'].",
    );
  }
  return new Set(listed.map(normalizeTrustedOrigin));
}

/** The origin as browsers send it (lower case, no default port), so it compares equal to their `Origin`. */
function normalizeTrustedOrigin(origin: unknown): string {
  const fix =
    'write it as browsers send the Origin header: scheme://host[:port], no path, e.g. https://app.example.com.';
  if (typeof origin !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/i.test(origin)) {
    throw new SessionConfigurationError(
      `crossOriginProtection.trustedOrigins: ${JSON.stringify(origin)} is not an origin; ${fix}`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    throw new SessionConfigurationError(
      `crossOriginProtection.trustedOrigins: ${JSON.stringify(origin)} is not an origin; ${fix}`,
    );
  }
  if (parsed.username || parsed.password) {
    throw new SessionConfigurationError(
      `crossOriginProtection.trustedOrigins: ${JSON.stringify(origin)} has credentials; ${fix}`,
    );
  }
  // `URL.origin` is "null" for schemes without a tuple origin (say chrome-extension:): keep those as written.
  return parsed.origin === 'null' ? origin.toLowerCase() : parsed.origin;
}

/** The host[:port] of an `Origin` value as written (lower case), or null when it is not `scheme://authority`. */
function originHost(origin: string): string | null {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(origin);
  if (!match || !URL.canParse(origin)) return null;
  return match[1].toLowerCase();
}

/**
 * One header's text, undefined when absent or empty (as Go's `Header.Get` sees it); a header
 * sent twice arrives joined (`a, b`) or as a list, and then matches nothing.
 */
function headerText(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text === '' ? undefined : text;
}
