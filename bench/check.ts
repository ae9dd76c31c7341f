import type { BenchApp } from './app-process.js';

/**
 * Proves an app does its job before it is measured: a benchmark of a broken guard
 * is worthless. With a valid cookie: 200 and the session's user. Guarded apps
 * also: 401 without a cookie and 401 with a well-formed cookie nobody issued.
 * Throws with what was wrong.
 */
export async function checkApp(app: BenchApp, port: number, cookie: string, user: string): Promise<void> {
  const url = `http://127.0.0.1:${port}/me`;
  const withCookie = await fetch(url, { headers: { cookie } });
  const body = (await withCookie.text()).slice(0, 200);
  if (withCookie.status !== 200)
    throw new Error(`app ${app.number}: valid cookie answered ${withCookie.status} ${body}`);
  const expected = app.guarded ? user : 'anonymous';
  if (JSON.parse(body).id !== expected) throw new Error(`app ${app.number}: expected user ${expected}, got ${body}`);
  if (!app.guarded) return;
  const without = await fetch(url);
  await without.arrayBuffer();
  if (without.status !== 401) throw new Error(`app ${app.number}: no cookie answered ${without.status}, expected 401`);
  const [name, value] = cookie.split('=');
  const forged = `${name}=${value.slice(0, -4)}${value.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  const wrong = await fetch(url, { headers: { cookie: forged } });
  await wrong.arrayBuffer();
  if (wrong.status !== 401) throw new Error(`app ${app.number}: unknown cookie answered ${wrong.status}, expected 401`);
}
