import { Body, Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import request from 'supertest';
import {
  Public,
  SessionConfigurationError,
  SessionCookies,
  type SessionCookieResponse,
  type SessionRequest,
} from '../src/index.js';
import { resolveSessionOptions } from '../src/session.options.js';
import {
  putSetCookie,
  readCookieValues,
  readSingleCookieValue,
  serializeSetCookie,
} from '../src/http/session-cookie-header.js';
import {
  AuthFixtureController,
  bootHttpApp,
  cookiePair,
  digestOf,
  GuardedFixtureController,
  HTTP_PLATFORMS,
  type HttpApp,
  ProfileFixtureController,
  setCookies,
} from './support/http-app.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';

const HOUR = 60 * 60 * 1000;
const CLEARED_EXPIRES = 'Thu, 01 Jan 1970 00:00:00 GMT';

interface Row {
  id: string;
  user: string;
  created: Date;
  expires: Date;
}

describe('the Cookie header reader', () => {
  it('finds a cookie by exact name, trims blanks and drops RFC 6265 quotes', () => {
    const header = 'a=1; session_id2=no;xsession_id=no;  session_id = "v-1" ; b=2';
    expect(readCookieValues(header, 'session_id')).toEqual(['v-1']);
    expect(readSingleCookieValue(header, 'session_id')).toBe('v-1');
    expect(readSingleCookieValue('session_id=a=b', 'session_id')).toBe('a=b');
    expect(readSingleCookieValue('session_id', 'session_id')).toBeUndefined();
    expect(readSingleCookieValue('', 'session_id')).toBeUndefined();
    expect(readSingleCookieValue(undefined, 'session_id')).toBeUndefined();
    expect(readSingleCookieValue(['session_id=a'], 'session_id')).toBeUndefined();
  });

  it('trims only SP and HTAB around a value (RFC 6265 §5.2), never NBSP, VT, FF or other whitespace', () => {
    expect(readSingleCookieValue('session_id= \t v-1 \t ', 'session_id')).toBe('v-1');
    for (const space of ['\u00a0', '\v', '\f', '\r', '\n', '\u2028', '\ufeff']) {
      expect(readSingleCookieValue(`session_id=${space}v-1`, 'session_id')).toBe(`${space}v-1`);
      expect(readSingleCookieValue(`session_id=v-1${space}`, 'session_id')).toBe(`v-1${space}`);
      expect(readCookieValues(`session_id= ${space}v-1${space} `, 'session_id')).toEqual([`${space}v-1${space}`]);
    }
  });

  it('treats a name sent twice with different values as absent, and with the same value as that value', () => {
    expect(readCookieValues('session_id=a; session_id=b', 'session_id')).toEqual(['a', 'b']);
    expect(readSingleCookieValue('session_id=a; session_id=b', 'session_id')).toBeUndefined();
    expect(readSingleCookieValue('session_id=a; x=1; session_id=a', 'session_id')).toBe('a');
  });

  it('serializes Set-Cookie with every attribute in a fixed order', () => {
    const expires = new Date('2030-01-02T03:04:05Z');
    expect(
      serializeSetCookie('sid', 'v', expires, 60, {
        secure: true,
        domain: 'example.test',
        path: '/app',
        sameSite: 'none',
      }),
    ).toBe(
      'sid=v; Path=/app; Domain=example.test; Max-Age=60; Expires=Wed, 02 Jan 2030 03:04:05 GMT; HttpOnly; Secure; SameSite=None',
    );
    expect(serializeSetCookie('sid', 'v', expires, 60, { secure: false, path: '/', sameSite: 'strict' })).toBe(
      'sid=v; Path=/; Max-Age=60; Expires=Wed, 02 Jan 2030 03:04:05 GMT; HttpOnly; SameSite=Strict',
    );
  });

  it('replaces an earlier Set-Cookie of the same name and keeps the others', () => {
    const headers = new Map<string, unknown>([['set-cookie', ['theme=dark', 'sid=old']]]);
    const response = {
      getHeader: (name: string) => headers.get(name.toLowerCase()),
      setHeader: (name: string, value: unknown) => headers.set(name.toLowerCase(), value),
    };
    putSetCookie(response, 'sid', 'sid=new');
    expect(headers.get('set-cookie')).toEqual(['theme=dark', 'sid=new']);
    expect(() => putSetCookie({ getHeader: () => undefined }, 'sid', 'sid=x')).toThrow(
      /Express Response or FastifyReply/,
    );
  });

  it('defaults Secure to true except under NODE_ENV development or test, and rejects attribute injection', () => {
    expect(resolveSessionOptions({}, { NODE_ENV: 'production' }).cookie.secure).toBe(true);
    expect(resolveSessionOptions({}, {}).cookie.secure).toBe(true);
    expect(resolveSessionOptions({}, { NODE_ENV: 'development' }).cookie.secure).toBe(false);
    expect(resolveSessionOptions({}, { NODE_ENV: 'test' }).cookie.secure).toBe(false);
    expect(resolveSessionOptions({ cookie: { secure: true } }, { NODE_ENV: 'test' }).cookie.secure).toBe(true);
    expect(() => resolveSessionOptions({ cookie: { domain: 'a.test; Secure=false' } })).toThrow(
      SessionConfigurationError,
    );
    expect(() => resolveSessionOptions({ cookie: { path: '/\r\nX-Evil: 1' } })).toThrow(SessionConfigurationError);
  });
});

/**
 * "Log in as someone else" in one request: logout, then login, on one response that
 * already carries another cookie. The second session cookie must replace the first
 * (on Fastify, `reply.header('set-cookie')` appends unless the old one is removed).
 */
@Controller('switch-user')
class SwitchUserController {
  constructor(@Inject(SessionCookies) private readonly cookies: SessionCookies) {}

  @Public()
  @Post()
  @HttpCode(200)
  async switchUser(
    @Req() incoming: SessionRequest,
    @Body() body: { userId: string },
    @Res({ passthrough: true }) response: SessionCookieResponse,
  ) {
    const other = 'theme=dark; Path=/';
    if (typeof response.setHeader === 'function') response.setHeader('Set-Cookie', [other]);
    else response.header!('set-cookie', other);
    await this.cookies.logout(incoming, response);
    await this.cookies.login(response, body.userId);
    return { ok: true };
  }
}

describe.each(HTTP_PLATFORMS)('SessionCookies on %s', (_platformLabel, platform) => {
  describe.each(TEST_DATABASES)('with %s', (_databaseLabel, database) => {
    let db: OpenDatabase;
    beforeAll(async () => {
      db = await database.open();
    });
    afterAll(() => db.dispose());

    describe('with the default cookie attributes (NODE_ENV=test)', () => {
      let http: HttpApp;
      beforeAll(async () => {
        http = await bootHttpApp(platform, {
          database: db.options,
          session: { globalGuard: true, ttl: 2 * HOUR },
          controllers: [
            AuthFixtureController,
            ProfileFixtureController,
            GuardedFixtureController,
            SwitchUserController,
          ],
        });
      });
      afterAll(() => http.close());
      afterEach(() => http.dataSource.query('DELETE FROM sessions'));

      const rows = (): Promise<Row[]> =>
        http.dataSource.query('SELECT id, "user", created, expires FROM sessions ORDER BY created, id');
      const login = async (userId: string) => {
        const response = await request(http.server).post('/auth/login').send({ userId }).expect(200);
        return { response, cookie: cookiePair(response), value: cookiePair(response).slice('session_id='.length) };
      };

      it('login sets HttpOnly, SameSite=Lax, Path=/, no Secure, and Max-Age/Expires matching the stored expiry', async () => {
        const { response, value } = await login('alice');
        expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
        const [row] = await rows();
        expect(row.id).toBe(digestOf(value));
        expect(row.user).toBe('alice');
        expect(setCookies(response)).toEqual([
          `session_id=${value}; Path=/; Max-Age=7200; Expires=${row.expires.toUTCString()}; HttpOnly; SameSite=Lax`,
        ]);
        const me = await request(http.server).get('/me').set('Cookie', `session_id=${value}`).expect(200);
        expect(me.body.user).toEqual({ id: 'alice' });
      });

      it('logout deletes the session, clears the cookie, and leaves the user’s other sessions', async () => {
        const laptop = await login('alice');
        const phone = await login('alice');
        const response = await request(http.server).post('/auth/logout').set('Cookie', laptop.cookie).expect(200);
        expect(setCookies(response)).toEqual([
          `session_id=; Path=/; Max-Age=0; Expires=${CLEARED_EXPIRES}; HttpOnly; SameSite=Lax`,
        ]);
        expect((await rows()).map((row) => row.id)).toEqual([digestOf(phone.value)]);
        await request(http.server).get('/me').set('Cookie', laptop.cookie).expect(401);
        await request(http.server).get('/me').set('Cookie', phone.cookie).expect(200);
      });

      it('logout without a session, or twice, is a 200 that clears the cookie', async () => {
        const other = await login('bob');
        for (const cookie of [undefined, 'session_id=' + 'Q'.repeat(43), 'session_id=bad value', 'theme=dark']) {
          const call = request(http.server).post('/auth/logout');
          const response = await (cookie === undefined ? call : call.set('Cookie', cookie));
          expect(response.status).toBe(200);
          expect(setCookies(response)[0]).toMatch(/^session_id=; Path=\/; Max-Age=0; /);
        }
        expect(await rows()).toHaveLength(1);
        const { cookie } = await login('alice');
        await request(http.server).post('/auth/logout').set('Cookie', cookie).expect(200);
        await request(http.server).post('/auth/logout').set('Cookie', cookie).expect(200);
        expect((await rows()).map((row) => row.id)).toEqual([digestOf(other.value)]);
      });

      it('logout with the cookie sent twice with different values deletes both sessions', async () => {
        const a = await login('alice');
        const b = await login('mallory');
        const c = await login('carol');
        await request(http.server).post('/auth/logout').set('Cookie', `${a.cookie}; ${b.cookie}`).expect(200);
        expect((await rows()).map((row) => row.id)).toEqual([digestOf(c.value)]);
      });

      it('logoutEverywhere deletes every session of the user only, and clears the cookie', async () => {
        const sessions = [await login('alice'), await login('alice'), await login('alice')];
        const bob = await login('bob');
        const response = await request(http.server)
          .post('/auth/logout-everywhere')
          .set('Cookie', sessions[1].cookie)
          .expect(200);
        expect(response.body).toEqual({ deleted: 3 });
        expect(setCookies(response)).toEqual([
          `session_id=; Path=/; Max-Age=0; Expires=${CLEARED_EXPIRES}; HttpOnly; SameSite=Lax`,
        ]);
        expect((await rows()).map((row) => row.user)).toEqual(['bob']);
        for (const { cookie } of sessions) await request(http.server).get('/me').set('Cookie', cookie).expect(401);
        await request(http.server).get('/me').set('Cookie', bob.cookie).expect(200);
      });

      it('logoutEverywhere needs a session (it is guarded)', async () => {
        await login('alice');
        await request(http.server).post('/auth/logout-everywhere').expect(401);
        expect(await rows()).toHaveLength(1);
      });

      it('rotate swaps the cookie for a fresh value with the same expiry; the old one stops working at once', async () => {
        const { cookie, value } = await login('alice');
        const [before] = await rows();
        const response = await request(http.server).post('/auth/rotate').set('Cookie', cookie).expect(200);
        expect(response.body).toEqual({ rotated: true });
        const rotated = cookiePair(response);
        const newValue = rotated.slice('session_id='.length);
        expect(newValue).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(newValue).not.toBe(value);
        const [after] = await rows();
        expect(after).toEqual({ ...before, id: digestOf(newValue) });
        const [line] = setCookies(response);
        expect(line).toContain(`Expires=${before.expires.toUTCString()};`);
        const maxAge = Number(/Max-Age=(\d+)/.exec(line)![1]);
        expect(maxAge).toBeGreaterThan(7200 - 60);
        expect(maxAge).toBeLessThanOrEqual(7200);
        await request(http.server).get('/me').set('Cookie', cookie).expect(401);
        const me = await request(http.server).get('/me').set('Cookie', rotated).expect(200);
        expect(me.body.sessionId).toBe(digestOf(newValue));
      });

      it('logout then login on one response sends one session cookie, the new one, and keeps the other cookies', async () => {
        const { cookie: old } = await login('alice');
        const response = await request(http.server)
          .post('/switch-user')
          .set('Cookie', old)
          .send({ userId: 'bob' })
          .expect(200);
        const lines = setCookies(response);
        const sessionLines = lines.filter((line) => line.startsWith('session_id='));
        // Not the cleared cookie followed by the new one: only the new one.
        expect(sessionLines).toEqual([expect.stringMatching(/^session_id=[A-Za-z0-9_-]{43}; /)]);
        expect(lines).toEqual(['theme=dark; Path=/', sessionLines[0]]);
        const fresh = cookiePair(response);
        await request(http.server).get('/me').set('Cookie', old).expect(401);
        const me = await request(http.server).get('/me').set('Cookie', fresh).expect(200);
        expect(me.body.user).toEqual({ id: 'bob' });
        expect((await rows()).map((row) => row.user)).toEqual(['bob']);
      });
    });

    describe('with custom attributes under NODE_ENV=production', () => {
      let http: HttpApp;
      beforeAll(async () => {
        const nodeEnv = process.env.NODE_ENV;
        process.env.NODE_ENV = 'production';
        try {
          http = await bootHttpApp(platform, {
            database: db.options,
            session: {
              globalGuard: true,
              cookieName: 'sid',
              ttl: HOUR,
              absoluteTimeout: 30 * 60 * 1000,
              cookie: { domain: 'example.test', path: '/', sameSite: 'strict' },
            },
          });
        } finally {
          process.env.NODE_ENV = nodeEnv;
        }
      });
      afterAll(() => http.close());
      afterEach(() => http.dataSource.query('DELETE FROM sessions'));

      it('login sets Secure, the Domain, SameSite=Strict, and a lifetime capped by absoluteTimeout', async () => {
        const response = await request(http.server).post('/auth/login').send({ userId: 'alice' }).expect(200);
        const value = cookiePair(response, 'sid').slice('sid='.length);
        const [row]: Row[] = await http.dataSource.query('SELECT id, "user", created, expires FROM sessions');
        expect(row.expires.getTime() - row.created.getTime()).toBe(30 * 60 * 1000);
        expect(setCookies(response)).toEqual([
          `sid=${value}; Path=/; Domain=example.test; Max-Age=1800; Expires=${row.expires.toUTCString()}; HttpOnly; Secure; SameSite=Strict`,
        ]);
      });

      it('clears the cookie with the same Domain and Path (or the browser would keep it)', async () => {
        const login = await request(http.server).post('/auth/login').send({ userId: 'alice' }).expect(200);
        const response = await request(http.server)
          .post('/auth/logout')
          .set('Cookie', cookiePair(login, 'sid'))
          .expect(200);
        expect(setCookies(response)).toEqual([
          `sid=; Path=/; Domain=example.test; Max-Age=0; Expires=${CLEARED_EXPIRES}; HttpOnly; Secure; SameSite=Strict`,
        ]);
        expect(await http.dataSource.query('SELECT id FROM sessions')).toEqual([]);
      });
    });
  });
});
