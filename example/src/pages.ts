// Server-rendered pages: plain template strings, every interpolated value escaped.
import type { Session } from 'nestjs-typeorm-session';
import { deviceLabel } from './device-label.js';
import { PASSWORD_LENGTH, USERNAME_LENGTH } from './credentials.js';
import { PURGE_DESCRIPTION, RECENT_LOGIN_DESCRIPTION, RECENT_LOGIN_MS } from './demo.settings.js';
import type { User } from './user.entity.js';

/** Fixed texts for `?notice=`: the query string picks one, it never supplies the words. */
export const NOTICES = {
  'signed-up': 'Welcome! Your account is ready and this browser is signed in.',
  'password-changed': 'Password changed. This browser got a fresh session cookie.',
  'password-changed-others-out':
    'Password changed. This browser got a fresh session cookie; your other sessions were signed out.',
  revoked: 'That session is revoked: the browser holding it is signed out.',
  'logged-out': 'You are logged out.',
  'logged-out-everywhere': 'You are logged out on every device.',
  reauthenticated: `Password confirmed: for the next ${RECENT_LOGIN_DESCRIPTION} you can delete your account.`,
  'account-deleted': 'Your account and all its sessions are deleted.',
} as const;

export type NoticeKey = keyof typeof NOTICES;

export function noticeText(key: unknown): string | undefined {
  return typeof key === 'string' && Object.hasOwn(NOTICES, key) ? NOTICES[key as NoticeKey] : undefined;
}

export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** "2026-02-03 14:05 UTC": the same on every machine, unlike toLocaleString. */
function formatDate(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** "in 23 h", "5 min ago": enough to see sliding expiry at work. */
function relativeTime(date: Date, now: Date): string {
  const ms = date.getTime() - now.getTime();
  const minutes = Math.round(Math.abs(ms) / 60_000);
  const amount =
    minutes < 1
      ? 'less than a minute'
      : minutes < 90
        ? `${minutes} min`
        : minutes < 48 * 60
          ? `${Math.round(minutes / 60)} h`
          : `${Math.round(minutes / 1440)} days`;
  return ms >= 0 ? `in ${amount}` : `${amount} ago`;
}

const STYLE = `
  :root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --brand: #3454d1; --danger: #c2362b; --ok: #1f7a4d; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; color: var(--ink); background: #f5f7fa; }
  header { background: #fff; border-bottom: 1px solid var(--line); }
  .bar { max-width: 760px; margin: 0 auto; padding: 12px 20px; display: flex; align-items: center; gap: 12px; }
  .brand { font-weight: 700; color: var(--ink); text-decoration: none; }
  .brand small { font-weight: 400; color: var(--muted); margin-left: 6px; }
  .bar .who { margin-left: auto; color: var(--muted); }
  main { max-width: 760px; margin: 24px auto; padding: 0 20px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin-bottom: 18px; }
  .narrow { max-width: 400px; margin-left: auto; margin-right: auto; }
  h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 17px; margin: 0 0 12px; }
  p { margin: 0 0 10px; } .muted { color: var(--muted); font-size: 13px; }
  label { display: block; font-weight: 600; margin: 12px 0 4px; }
  label.check { font-weight: 400; display: flex; gap: 8px; align-items: center; }
  input[type=text], input[type=password] { width: 100%; padding: 8px 10px; border: 1px solid #cbd2d9; border-radius: 6px; font: inherit; }
  button { font: inherit; padding: 7px 14px; border-radius: 6px; border: 1px solid var(--brand); background: var(--brand); color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: var(--ink); border-color: #cbd2d9; }
  button.danger { background: #fff; color: var(--danger); border-color: var(--danger); }
  button.small { padding: 3px 10px; font-size: 13px; }
  form.inline { display: inline; }
  .actions { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 16px; }
  .notice { background: #e3f9e5; border: 1px solid #a3d9a5; color: var(--ok); padding: 10px 14px; border-radius: 8px; margin-bottom: 18px; }
  .errors { background: #ffeeee; border: 1px solid #f5b5b0; color: var(--danger); padding: 10px 14px; border-radius: 8px; margin: 0 0 12px; list-style: none; }
  table { width: 100%; border-collapse: collapse; font-size: 14px; }
  th, td { text-align: left; padding: 8px 6px; border-bottom: 1px solid var(--line); vertical-align: middle; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  tr.current td { background: #f0f4ff; }
  code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
  .badge { display: inline-block; background: var(--brand); color: #fff; border-radius: 999px; padding: 1px 8px; font-size: 12px; }
`;

interface LayoutOptions {
  title: string;
  body: string;
  user?: User;
  notice?: string;
}

function layout({ title, body, user, notice }: LayoutOptions): string {
  const who = user
    ? `<span class="who">Signed in as <strong>${escapeHtml(user.username)}</strong></span>
       <form class="inline" method="post" action="/logout"><button class="secondary small" type="submit">Log out</button></form>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · nestjs-typeorm-session demo</title>
<style>${STYLE}</style>
</head>
<body>
<header><div class="bar"><a class="brand" href="/">nestjs-typeorm-session<small>demo</small></a>${who}</div></header>
<main>
${notice ? `<div class="notice" role="status">${escapeHtml(notice)}</div>` : ''}
${body}
</main>
</body>
</html>`;
}

function errorList(errors: string[]): string {
  if (errors.length === 0) return '';
  return `<ul class="errors" role="alert">${errors.map((error) => `<li>${escapeHtml(error)}</li>`).join('')}</ul>`;
}

export function loginPage(options: { username?: string; errors?: string[]; notice?: string } = {}): string {
  const body = `<div class="card narrow">
  <h1>Log in</h1>
  ${errorList(options.errors ?? [])}
  <form method="post" action="/login">
    <label for="username">Username</label>
    <input id="username" name="username" type="text" autocomplete="username" required value="${escapeHtml(options.username ?? '')}" autofocus>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>
    <div class="actions"><button type="submit">Log in</button></div>
  </form>
  <p class="muted" style="margin-top:16px">No account yet? <a href="/signup">Sign up</a>.</p>
</div>`;
  return layout({ title: 'Log in', body, notice: options.notice });
}

export function signupPage(options: { username?: string; errors?: string[] } = {}): string {
  const body = `<div class="card narrow">
  <h1>Sign up</h1>
  ${errorList(options.errors ?? [])}
  <form method="post" action="/signup">
    <label for="username">Username</label>
    <input id="username" name="username" type="text" autocomplete="username" value="${escapeHtml(options.username ?? '')}" autofocus>
    <p class="muted">${USERNAME_LENGTH.min} to ${USERNAME_LENGTH.max} characters.</p>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="new-password">
    <p class="muted">${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters.</p>
    <div class="actions"><button type="submit">Create account</button></div>
  </form>
  <p class="muted" style="margin-top:16px">Already have an account? <a href="/login">Log in</a>.</p>
</div>`;
  return layout({ title: 'Sign up', body });
}

export interface HomePageOptions {
  user: User;
  sessions: Session[];
  /** `Session.id` of the session this request came with. */
  currentSessionId: string;
  /** When this session last proved its password (`Session.authenticatedAt`). */
  authenticatedAt: Date;
  /** For "in 23 h" / "5 min ago" next to the dates; nothing is decided on it. */
  now: Date;
  notice?: string;
  passwordErrors?: string[];
}

export function homePage(options: HomePageOptions): string {
  const { user, sessions, currentSessionId, authenticatedAt, now } = options;
  const recent = now.getTime() - authenticatedAt.getTime() <= RECENT_LOGIN_MS;
  const rows = sessions
    .map((session) => {
      const current = session.id === currentSessionId;
      return `<tr${current ? ' class="current"' : ''} data-session-id="${escapeHtml(session.id)}">
      <td><span class="device" title="${escapeHtml(session.userAgent ?? 'no User-Agent was sent')}">${escapeHtml(deviceLabel(session, now))}</span>${current ? ' · <span class="badge">this browser</span>' : ''}${session.deviceBound ? ' · <span class="badge bound" title="Device Bound Session Credentials: a copied cookie stops working on another machine">bound to this device\'s security chip</span>' : ''}</td>
      <td>${formatDate(session.created)}<br><span class="muted">${relativeTime(session.created, now)}</span></td>
      <td>${formatDate(session.expires)}<br><span class="muted">${relativeTime(session.expires, now)}</span></td>
      <td><form class="inline" method="post" action="/sessions/${encodeURIComponent(session.id)}/revoke"><button class="danger small" type="submit">Revoke</button></form></td>
    </tr>`;
    })
    .join('\n');
  const body = `<div class="card">
  <h1>Hello, ${escapeHtml(user.username)}</h1>
  <p>You are signed in. Your account was created ${formatDate(user.created)}.</p>
  <p class="muted">This browser holds an <code>HttpOnly</code> cookie named <code>session_id</code>: page scripts cannot read it
  (<code>document.cookie</code> does not show it), and the database stores only its SHA-256 digest.
  Sessions slide forward while you use them, never outlive a week, and expired ones are purged ${escapeHtml(PURGE_DESCRIPTION)}.</p>
</div>
<div class="card">
  <h2>Your sessions <span class="muted">(${sessions.length})</span></h2>
  <table>
    <thead><tr><th>Device</th><th>Created</th><th>Expires</th><th></th></tr></thead>
    <tbody>
    ${rows}
    </tbody>
  </table>
  <div class="actions">
    <form class="inline" method="post" action="/logout"><button class="secondary" type="submit">Log out</button></form>
    <form class="inline" method="post" action="/logout-everywhere"><button class="danger" type="submit">Log out everywhere</button></form>
  </div>
</div>
<div class="card">
  <h2>Change password</h2>
  ${errorList(options.passwordErrors ?? [])}
  <form method="post" action="/password">
    <input type="text" name="username" autocomplete="username" value="${escapeHtml(user.username)}" hidden>
    <label for="currentPassword">Current password</label>
    <input id="currentPassword" name="currentPassword" type="password" autocomplete="current-password">
    <label for="newPassword">New password</label>
    <input id="newPassword" name="newPassword" type="password" autocomplete="new-password">
    <label class="check"><input type="checkbox" name="signOutOthers" value="yes" checked> Also sign out my other sessions</label>
    <div class="actions"><button type="submit">Change password</button></div>
  </form>
</div>
<div class="card" id="delete-account">
  <h2>Delete account</h2>
  <p>Deletes your account and signs out all your sessions. It needs a login from the last
  ${escapeHtml(RECENT_LOGIN_DESCRIPTION)}: yours was ${relativeTime(authenticatedAt, now)}${recent ? '' : ', so you will be asked for your password first'}.</p>
  <form method="post" action="/account/delete"><button class="danger" type="submit">Delete my account</button></form>
</div>`;
  return layout({ title: 'Home', body, user, notice: options.notice });
}

/** Where a too-old login is sent before a sensitive action (`@RequireRecentLogin`). */
export function reauthenticatePage(options: { user: User; errors?: string[] }): string {
  const body = `<div class="card narrow">
  <h1>Confirm your password</h1>
  <p>Deleting your account needs a login from the last ${escapeHtml(RECENT_LOGIN_DESCRIPTION)}. Confirm your password to go on.</p>
  ${errorList(options.errors ?? [])}
  <form method="post" action="/reauthenticate">
    <input type="text" name="username" autocomplete="username" value="${escapeHtml(options.user.username)}" hidden>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    <div class="actions"><button type="submit">Confirm</button><a href="/">Cancel</a></div>
  </form>
</div>`;
  return layout({ title: 'Confirm your password', body, user: options.user });
}

/** What a browser sees when `crossOriginProtection` refused a form another site posted. */
export function crossOriginPage(options: { code: string; reason: string }): string {
  const body = `<div class="card narrow">
  <h1>Request refused</h1>
  <p>This request was sent to the demo by a page of another site, so it was refused: nothing was changed.</p>
  <p class="muted"><code>${escapeHtml(options.code)}</code> (<code>${escapeHtml(options.reason)}</code>)</p>
  <p><a href="/">Back to the demo</a></p>
</div>`;
  return layout({ title: 'Request refused', body });
}
