import { strict as assert } from 'node:assert';
import { DEFAULT_COOKIE_NAME } from 'nestjs-typeorm-session';

/** Log in → guarded request 200 → log out → the same cookie gets 401, over real HTTP. */
export async function checkHttpFlow(baseUrl: string, userId: string): Promise<void> {
  assert.equal((await fetch(`${baseUrl}/me`)).status, 401, 'no cookie: 401');

  const login = await fetch(`${baseUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  assert.equal(login.status, 200, 'login');
  const cookie = sessionCookie(login);
  assert.match(cookie, new RegExp(`^${DEFAULT_COOKIE_NAME}=[\\w-]{43}$`), 'login sets the session cookie');

  const me = await fetch(`${baseUrl}/me`, { headers: { cookie } });
  assert.equal(me.status, 200, 'guarded request with the cookie');
  assert.deepEqual(await me.json(), { user: { id: userId } });

  const logout = await fetch(`${baseUrl}/logout`, { method: 'POST', headers: { cookie } });
  assert.equal(logout.status, 200, 'logout');
  assert.equal(sessionCookie(logout), `${DEFAULT_COOKIE_NAME}=`, 'logout clears the cookie');

  assert.equal((await fetch(`${baseUrl}/me`, { headers: { cookie } })).status, 401, 'the old cookie after logout');
}

/** `name=value` of the session cookie a response sets. */
function sessionCookie(response: Response): string {
  const header = response.headers.getSetCookie().find((line) => line.startsWith(`${DEFAULT_COOKIE_NAME}=`));
  assert.ok(header, `a Set-Cookie for ${DEFAULT_COOKIE_NAME}`);
  return header.split(';')[0];
}
