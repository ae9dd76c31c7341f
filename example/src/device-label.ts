import Bowser from 'bowser';
import type { Session } from 'nestjs-typeorm-session';

/**
 * One line a person recognises a session by: "Chrome 156 on Linux · 127.0.0.x · active
 * 3 minutes ago". The package stores the raw `User-Agent`; reading it is the app's choice,
 * here with bowser (MIT), a dependency of the demo only.
 */
export function deviceLabel(session: Session, now: Date): string {
  return [
    browserAndSystem(session.userAgent),
    addressHint(session.ip),
    activeAgo(session.lastSeen ?? session.created, now),
  ]
    .filter((part) => part !== null)
    .join(' · ');
}

/** "Chrome 156 on Linux", "Firefox 128 on Windows", or "Unknown browser". */
export function browserAndSystem(userAgent: string | null): string {
  if (!userAgent) return 'Unknown browser';
  const parsed = Bowser.parse(userAgent);
  const major = parsed.browser.version?.split('.')[0];
  const browser = parsed.browser.name ? `${parsed.browser.name}${major ? ` ${major}` : ''}` : 'Unknown browser';
  return parsed.os.name ? `${browser} on ${parsed.os.name}` : browser;
}

/**
 * Where from, without the whole address on screen: an IPv4 address (also IPv4-mapped
 * IPv6, as Node reports loopback) as "203.0.113.x", an IPv6 one by its first three groups.
 */
export function addressHint(ip: string | null): string | null {
  if (!ip) return null;
  const v4 = /^(?:::ffff:)?(\d+\.\d+\.\d+)\.\d+$/i.exec(ip);
  if (v4) return `${v4[1]}.x`;
  return `${ip.split(':').slice(0, 3).join(':')}:…`;
}

/** "active just now", "active 3 minutes ago", "active 2 hours ago", "active 4 days ago". */
export function activeAgo(seen: Date, now: Date): string {
  const minutes = Math.max(0, Math.floor((now.getTime() - seen.getTime()) / 60_000));
  if (minutes < 1) return 'active just now';
  const [amount, unit] =
    minutes < 60
      ? [minutes, 'minute']
      : minutes < 48 * 60
        ? [Math.floor(minutes / 60), 'hour']
        : [Math.floor(minutes / 1440), 'day'];
  return `active ${amount} ${unit}${amount === 1 ? '' : 's'} ago`;
}
