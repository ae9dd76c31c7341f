import { isIP } from 'node:net';
import { MAX_USER_AGENT_BYTES } from './session.constants.js';

/**
 * Where a session was opened from, as `createSessionForUser(userId, device)` takes it.
 * Both optional: leave one out (or null) to store nothing for it.
 * @publicApi
 */
export interface SessionDevice {
  /** The request's `User-Agent` header. Stored cleaned and cut to 512 bytes. */
  userAgent?: string | null;
  /** The client's address as the platform reports it (Express `req.ip`, Fastify `request.ip`). */
  ip?: string | null;
}

/** @internal How much of the device the module stores (the `deviceInfo` option, resolved). */
export interface DeviceInfoPolicy {
  ip: 'full' | 'truncated' | false;
  userAgent: boolean;
}

/** @internal What the store writes: cleaned, cut, truncated per the policy; null for "nothing". */
export interface StoredDevice {
  userAgent: string | null;
  ip: string | null;
}

/** @internal The parts of an Express or Fastify request the device is read from. */
export interface DeviceRequest {
  headers?: { 'user-agent'?: string | string[] };
  /** Express `req.ip` (honours `trust proxy`), Fastify `request.ip` (honours `trustProxy`). */
  ip?: string;
  socket?: { remoteAddress?: string };
}

/**
 * @internal The device of a request: its `User-Agent` and the address the platform
 * derived (never a hand-parsed `X-Forwarded-For`: only the platform knows which proxies
 * the app trusts). A bare Node request has no `ip`: its socket's peer address then.
 */
export function deviceOfRequest(request: DeviceRequest | undefined): SessionDevice {
  if (!request) return {};
  const header = request.headers?.['user-agent'];
  return {
    userAgent: Array.isArray(header) ? header[0] : header,
    ip: request.ip ?? request.socket?.remoteAddress,
  };
}

/** @internal What of `device` the policy lets the store keep, cleaned. Never throws. */
export function storedDevice(device: SessionDevice | undefined, policy: DeviceInfoPolicy): StoredDevice {
  return {
    userAgent: policy.userAgent ? cleanUserAgent(device?.userAgent) : null,
    ip: policy.ip === false ? null : policy.ip === 'truncated' ? truncateIp(device?.ip) : cleanIp(device?.ip),
  };
}

// C0/C1 controls (NUL would make PostgreSQL refuse the text) and format characters such as
// bidi overrides, which could make a device list display something else than was stored.
const INVISIBLE = /[\p{Cc}\p{Cf}]/gu;

// Half of a surrogate pair without its other half (a string cut mid-pair by a caller): not UTF-8 encodable.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * @internal A user agent fit to store and display: controls removed, lone surrogates
 * replaced, cut to `MAX_USER_AGENT_BYTES` UTF-8 bytes on a code point boundary; null
 * when nothing is left. Headers decoded from invalid UTF-8 arrive as Latin-1
 * characters and are kept as such. Reads at most a few KB of a huge header.
 */
export function cleanUserAgent(userAgent: unknown): string | null {
  if (typeof userAgent !== 'string') return null;
  // Each character is at least one byte, so this prefix holds every byte that can be kept
  // unless the controls removed below were many: then less is kept, never more.
  const cleaned = userAgent
    .slice(0, MAX_USER_AGENT_BYTES * 4)
    .replace(INVISIBLE, '')
    .replace(LONE_SURROGATE, '\uFFFD')
    .trim();
  if (cleaned.length === 0) return null;
  const bytes = Buffer.from(cleaned, 'utf8');
  if (bytes.length <= MAX_USER_AGENT_BYTES) return cleaned;
  let end = MAX_USER_AGENT_BYTES;
  // Back up over continuation bytes (10xxxxxx) to the start of the code point that did not fit.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8').trimEnd() || null;
}

/**
 * @internal An address the platform reported, if it is one. With `trust proxy` on, Express's
 * `req.ip` is whatever the client put first in `X-Forwarded-For`: anything that is not an
 * IP address is not stored.
 */
export function cleanIp(ip: unknown): string | null {
  if (typeof ip !== 'string' || ip.length > 64 || isIP(ip) === 0) return null;
  return ip;
}

/**
 * @internal The network of an address instead of the address: IPv4 to its /24
 * (`203.0.113.0`), IPv6 to its /48 (`2001:db8:85a3::`), an IPv4-mapped IPv6 address to
 * the /24 of its IPv4 part (`::ffff:203.0.113.0`; its /48 would be `::`, which says nothing).
 * A zone (`%eth0`) is dropped. Null when `ip` is not an address.
 */
export function truncateIp(ip: unknown): string | null {
  const address = cleanIp(ip);
  if (address === null) return null;
  if (isIP(address) === 4) return truncateIpv4(address);
  const groups = ipv6Groups(address.replace(/%.*$/, ''));
  if (groups === null) return null;
  const isMapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (isMapped) {
    return `::ffff:${groups[6] >> 8}.${groups[6] & 0xff}.${groups[7] >> 8}.0`;
  }
  const network = groups.slice(0, 3);
  while (network.length > 0 && network[network.length - 1] === 0) network.pop(); // `2001:db8:0::` is `2001:db8::`
  return `${network.map((group) => group.toString(16)).join(':')}::`;
}

function truncateIpv4(address: string): string {
  return `${address.split('.').slice(0, 3).join('.')}.0`;
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, a dotted IPv4 tail as two groups). */
function ipv6Groups(address: string): number[] | null {
  let text = address;
  const tail: number[] = [];
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, dotted.index);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.split('::');
  const parse = (part: string | undefined) => (part ? part.split(':').map((group) => parseInt(group, 16)) : []);
  const left = parse(head);
  const right = parse(rest);
  const missing = 8 - tail.length - left.length - right.length;
  const groups = rest === undefined ? [...left, ...tail] : [...left, ...Array(missing).fill(0), ...right, ...tail];
  return groups.length === 8 && groups.every((group) => Number.isInteger(group)) ? groups : null;
}
