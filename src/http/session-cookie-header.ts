/**
 * @internal Reading the `Cookie` request header and writing `Set-Cookie` response
 * headers by hand, so neither cookie-parser nor @fastify/cookie is needed (a
 * platform that already parsed cookies is left alone: the raw header is still there).
 */

/** @internal The `Set-Cookie` attributes the module's options decide. */
export interface CookieAttributes {
  secure: boolean;
  domain?: string;
  path: string;
  sameSite: 'lax' | 'strict' | 'none';
}

/** @internal A response of Express (a Node `ServerResponse`) or Fastify (a `FastifyReply`). */
export interface HeaderWritableResponse {
  getHeader(name: string): unknown;
  setHeader?(name: string, value: string | string[]): unknown;
  removeHeader?(name: string): unknown;
  header?(name: string, value: string | string[]): unknown;
}

/**
 * @internal Every value of cookie `name` in a `Cookie` header, in header order. A
 * browser sends the same name twice when cookies with different Path or Domain
 * attributes coexist (or a sibling subdomain "tossed" one in).
 */
export function readCookieValues(header: unknown, name: string): string[] {
  const values: string[] = [];
  if (typeof header !== 'string') return values;
  for (let start = 0; start < header.length;) {
    let end = header.indexOf(';', start);
    if (end === -1) end = header.length;
    const value = valueIfNamed(header, name, start, end);
    if (value !== undefined) values.push(value);
    start = end + 1;
  }
  return values;
}

/**
 * @internal The one value of cookie `name`, or undefined when it is absent or
 * ambiguous: sent several times with different values. Picking one of them would
 * let whoever planted the other decide which session a request runs under, so an
 * ambiguous cookie counts as no cookie (401); logging in again overwrites ours.
 * The guard's hot path: a scan with no intermediate objects.
 */
export function readSingleCookieValue(header: unknown, name: string): string | undefined {
  if (typeof header !== 'string') return undefined;
  let found: string | undefined;
  for (let start = 0; start < header.length;) {
    let end = header.indexOf(';', start);
    if (end === -1) end = header.length;
    const value = valueIfNamed(header, name, start, end);
    if (value !== undefined) {
      if (found !== undefined && found !== value) return undefined;
      found = value;
    }
    start = end + 1;
  }
  return found;
}

/**
 * The value of the `name=value` pair in `header[start, end)`, or undefined when it has
 * another name. Only SP and HTAB around the name and the value are dropped (RFC 6265
 * §5.2): `String.prototype.trim` would also drop NBSP, VT and FF, letting a value that
 * is not the cookie's (`\u00a0<token>`) open the session.
 */
function valueIfNamed(header: string, name: string, start: number, end: number): string | undefined {
  let position = start;
  while (position < end && isBlank(header.charCodeAt(position))) position++;
  if (!header.startsWith(name, position)) return undefined;
  position += name.length;
  while (position < end && isBlank(header.charCodeAt(position))) position++;
  if (position >= end || header.charCodeAt(position) !== 61 /* = */) return undefined;
  position++;
  while (position < end && isBlank(header.charCodeAt(position))) position++;
  while (end > position && isBlank(header.charCodeAt(end - 1))) end--;
  return unquote(header.slice(position, end));
}

/** SP or HTAB: the only optional whitespace in a `Cookie` header. */
function isBlank(code: number): boolean {
  return code === 32 || code === 9;
}

/** RFC 6265 allows a cookie value wrapped in double quotes; the quotes are not part of it. */
function unquote(value: string): string {
  return value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34
    ? value.slice(1, -1)
    : value;
}

/**
 * @internal A `Set-Cookie` value. `maxAgeSeconds` 0 with the epoch as `expires`
 * clears the cookie. Values are written as-is: session cookie values are
 * base64url and names are RFC 6265 tokens (checked at startup), so nothing needs encoding.
 */
export function serializeSetCookie(
  name: string,
  value: string,
  expires: Date,
  maxAgeSeconds: number,
  attributes: CookieAttributes,
): string {
  let cookie = `${name}=${value}; Path=${attributes.path}`;
  if (attributes.domain !== undefined) cookie += `; Domain=${attributes.domain}`;
  cookie += `; Max-Age=${maxAgeSeconds}; Expires=${expires.toUTCString()}; HttpOnly`;
  if (attributes.secure) cookie += '; Secure';
  cookie += `; SameSite=${SAME_SITE[attributes.sameSite]}`;
  return cookie;
}

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

/**
 * @internal Adds `setCookie` to the response's `Set-Cookie` headers, replacing an
 * earlier one for the same cookie name (login then rotate in one request must not
 * send two conflicting cookies). Works on Express/Node responses (`setHeader`) and
 * Fastify replies (`header`, which appends for `set-cookie`).
 */
export function putSetCookie(response: HeaderWritableResponse, name: string, setCookie: string): void {
  const existing = response.getHeader('set-cookie');
  const prefix = `${name}=`;
  const kept: string[] = [];
  if (typeof existing === 'string') {
    if (!existing.startsWith(prefix)) kept.push(existing);
  } else if (Array.isArray(existing)) {
    for (const cookie of existing) if (!String(cookie).startsWith(prefix)) kept.push(String(cookie));
  }
  kept.push(setCookie);
  if (typeof response.setHeader === 'function') {
    response.setHeader('Set-Cookie', kept);
  } else if (typeof response.header === 'function') {
    response.removeHeader?.('set-cookie');
    response.header('set-cookie', kept);
  } else {
    throw new TypeError(
      'nestjs-typeorm-session: cannot set a cookie on this response object; pass the Express Response or FastifyReply (e.g. from @Res({ passthrough: true })).',
    );
  }
}
