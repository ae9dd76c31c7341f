import { ForbiddenException } from '@nestjs/common';
import request from 'supertest';
import {
  bootHttpApp,
  CapturingLogger,
  cookiePair,
  digestOf,
  FixtureUsers,
  handlerRuns,
  HTTP_PLATFORMS,
  type HttpApp,
  recordQueries,
  setCookies,
  AuthFixtureController,
  GuardedFixtureController,
} from './support/http-app.js';
import { POSTGRES_ONLY, TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { describeEachWhere } from './support/requirements.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

const UNAUTHORIZED = { message: 'Unauthorized', statusCode: 401 };
const UNAVAILABLE = { message: 'Service Unavailable', statusCode: 503 };

describe.each(HTTP_PLATFORMS)('AuthGuard on %s', (_platformLabel, platform) => {
  describe.each(TEST_DATABASES)('with %s', (_databaseLabel, database) => {
    let db: OpenDatabase;
    beforeAll(async () => {
      db = await database.open();
    });
    afterAll(() => db.dispose());

    describe('as a global guard with resolveUser', () => {
      const users = new FixtureUsers();
      const logger = new CapturingLogger();
      let http: HttpApp;

      beforeAll(async () => {
        http = await bootHttpApp(platform, {
          database: db.options,
          session: { globalGuard: true, resolveUser: users.resolveUser },
          logger,
        });
      });
      afterAll(() => http.close());
      beforeEach(() => {
        users.users = new Map([
          ['alice', { id: 'alice', name: 'Alice' }],
          ['bob', { id: 'bob', name: 'Bob' }],
        ]);
        users.failure = null;
        users.calls = 0;
        logger.lines.length = 0;
      });
      afterEach(() => http.dataSource.query('DELETE FROM sessions'));

      async function login(userId: string): Promise<{ cookie: string; value: string }> {
        const response = await request(http.server).post('/auth/login').send({ userId }).expect(200);
        const cookie = cookiePair(response);
        return { cookie, value: cookie.slice('session_id='.length) };
      }

      /** GET /me with `cookie`, asserting a 401 the handler never saw. */
      async function expectUnauthorized(cookie: string | undefined) {
        const before = handlerRuns.count;
        const call = request(http.server).get('/me');
        const response = await (cookie === undefined ? call : call.set('Cookie', cookie));
        expect(response.status).toBe(401);
        expect(response.body).toEqual(UNAUTHORIZED);
        expect(setCookies(response)).toEqual([]);
        expect(handlerRuns.count).toBe(before);
        return response;
      }

      it('a valid cookie reaches the handler with the resolved user and the session', async () => {
        const { cookie, value } = await login('alice');
        const before = handlerRuns.count;
        const response = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
        expect(response.body.user).toEqual({ id: 'alice', name: 'Alice' });
        expect(response.body.sessionId).toBe(digestOf(value));
        expect(handlerRuns.count).toBe(before + 1);
        expect(users.calls).toBe(1);
        // No rolling: nothing to refresh.
        expect(setCookies(response)).toEqual([]);
      });

      it('finds the cookie among others, with or without spaces', async () => {
        const { value } = await login('bob');
        for (const header of [
          `theme=dark; session_id=${value}; lang=en`,
          `theme=dark;session_id=${value}`,
          `xsession_id=nope; session_id2=nope; session_id = ${value} `,
          `session_id="${value}"`,
        ]) {
          const response = await request(http.server).get('/me').set('Cookie', header);
          expect({ header, status: response.status }).toEqual({ header, status: 200 });
          expect(response.body.user.id).toBe('bob');
        }
      });

      it('answers 401 without a cookie, or with only other cookies', async () => {
        await expectUnauthorized(undefined);
        await expectUnauthorized('theme=dark; xsession_id=abc; session_id2=abc');
        await expectUnauthorized('session_id');
        await expectUnauthorized('session_id=');
      });

      it('answers 401 to malformed values without querying the database', async () => {
        const malformed = [
          'session_id=a\\b',
          'session_id=has"quote',
          'session_id=' + 'x'.repeat(1025),
          'session_id=%00%01',
          'session_id=caf\u00e9',
        ];
        const { queries } = await recordQueries(http.dataSource, async () => {
          for (const cookie of malformed) await expectUnauthorized(cookie);
        });
        // `%00%01` is well-formed (not decoded): it is looked up and unknown.
        expect(queries.filter((sql) => sql.startsWith('SELECT'))).toHaveLength(1);
        expect(queries.every((sql) => sql.startsWith('SELECT'))).toBe(true);
      });

      it('answers 401, without a query, to the valid value wrapped in NBSP (only SP and HTAB are optional whitespace)', async () => {
        const { value } = await login('alice');
        const { queries } = await recordQueries(http.dataSource, async () => {
          for (const cookie of [
            `session_id=\u00a0${value}`,
            `session_id=${value}\u00a0`,
            `session_id= \u00a0${value}`,
          ]) {
            await expectUnauthorized(cookie);
          }
        });
        expect(queries).toEqual([]);
        await request(http.server).get('/me').set('Cookie', `session_id= \t${value}\t `).expect(200);
      });

      it('answers 401 to an unknown value, and to the stored digest itself', async () => {
        const { value } = await login('alice');
        await expectUnauthorized('session_id=' + 'A'.repeat(43));
        await expectUnauthorized(`session_id=${digestOf(value)}`);
      });

      it('answers 401 to an expired session and deletes it', async () => {
        const { cookie, value } = await login('alice');
        await http.dataSource.query(
          `UPDATE sessions SET created = now() - interval '2 hours', expires = now() - interval '1 second' WHERE id = $1`,
          [digestOf(value)],
        );
        await expectUnauthorized(cookie);
        expect(await http.dataSource.query('SELECT id FROM sessions')).toEqual([]);
        expect(users.calls).toBe(0);
      });

      it('answers 401 when resolveUser says the user is gone (null or undefined)', async () => {
        const { cookie } = await login('carol'); // not in the user map: null
        await expectUnauthorized(cookie);
        expect(users.calls).toBe(1);
        users.users.set('carol', undefined);
        await expectUnauthorized(cookie);
        // The session itself is left alone: the user may come back.
        expect(await http.dataSource.query('SELECT id FROM sessions')).toHaveLength(1);
      });

      it('answers 401 to every falsy resolveUser result (false, 0, empty string, NaN, 0n), never a request with that user', async () => {
        const { cookie } = await login('carol');
        for (const falsy of [false, 0, -0, '', Number.NaN, 0n]) {
          users.users.set('carol', falsy);
          await expectUnauthorized(cookie);
        }
        expect(users.calls).toBe(6);
      });

      it('passes an HttpException from resolveUser through as-is', async () => {
        const { cookie } = await login('alice');
        users.failure = new ForbiddenException('banned');
        const response = await request(http.server).get('/me').set('Cookie', cookie);
        expect(response.status).toBe(403);
        expect(response.body.message).toBe('banned');
      });

      it('answers 503 when resolveUser throws anything else, and logs it without the cookie', async () => {
        const { cookie, value } = await login('alice');
        users.failure = new Error('users table unreachable');
        const before = handlerRuns.count;
        const response = await request(http.server).get('/me').set('Cookie', cookie);
        expect(response.status).toBe(503);
        expect(response.body).toEqual(UNAVAILABLE);
        expect(handlerRuns.count).toBe(before);
        expect(logger.text()).toContain('users table unreachable');
        expect(logger.text()).not.toContain(value);
        expect(logger.text()).not.toContain(digestOf(value));
      });

      it('sends the same value twice: fine; two different values: 401, whichever comes first', async () => {
        const alice = await login('alice');
        const bob = await login('bob');
        const twice = await request(http.server)
          .get('/me')
          .set('Cookie', `${alice.cookie}; ${alice.cookie}`)
          .expect(200);
        expect(twice.body.user.id).toBe('alice');
        await expectUnauthorized(`${alice.cookie}; ${bob.cookie}`);
        await expectUnauthorized(`${bob.cookie}; ${alice.cookie}`);
        await expectUnauthorized(`${alice.cookie}; session_id=planted-by-a-sibling-domain`);
      });

      it('checks a valid session with exactly one primary-key query and no write', async () => {
        const { cookie, value } = await login('alice');
        const { queries } = await recordQueries(http.dataSource, () =>
          request(http.server).get('/me').set('Cookie', cookie).expect(200),
        );
        expect(queries).toHaveLength(1);
        expect(queries[0]).toMatch(/^SELECT .* FROM "sessions" WHERE id = \$1$/);
        const [row] = await http.dataSource.query('SELECT expires FROM sessions WHERE id = $1', [digestOf(value)]);
        const again = await recordQueries(http.dataSource, () =>
          request(http.server).get('/me').set('Cookie', cookie).expect(200),
        );
        expect(again.queries).toHaveLength(1);
        const [after] = await http.dataSource.query('SELECT expires FROM sessions WHERE id = $1', [digestOf(value)]);
        expect(after.expires).toEqual(row.expires);
      });

      it('lets @Public() routes through without reading the cookie', async () => {
        const { cookie } = await login('alice');
        const { result, queries } = await recordQueries(http.dataSource, async () => {
          const anonymous = await request(http.server).get('/public').expect(200);
          const withCookie = await request(http.server).get('/public').set('Cookie', cookie).expect(200);
          const withGarbage = await request(http.server)
            .get('/public')
            .set('Cookie', 'session_id=bad value')
            .expect(200);
          return [anonymous.body, withCookie.body, withGarbage.body];
        });
        expect(result).toEqual([
          { public: true, user: null },
          { public: true, user: null },
          { public: true, user: null },
        ]);
        expect(queries).toEqual([]);
        expect(users.calls).toBe(0);
      });

      it('answers 503 (not 401, not 500) while the sessions table errors, logs the cause without the cookie, and recovers', async () => {
        const { cookie, value } = await login('alice');
        await http.dataSource.query('ALTER TABLE sessions RENAME TO sessions_away');
        try {
          const before = handlerRuns.count;
          const response = await request(http.server).get('/me').set('Cookie', cookie);
          expect(response.status).toBe(503);
          expect(response.body).toEqual(UNAVAILABLE);
          expect(JSON.stringify(response.body)).not.toContain('sessions');
          expect(handlerRuns.count).toBe(before);
          const errors = logger.lines.filter((line) => line.level === 'error');
          expect(errors).toHaveLength(1);
          expect(errors[0].message).toContain('Session lookup failed');
          expect(errors[0].message).toContain('SQLSTATE 42P01');
          expect(errors[0].message).toContain('AuthGuard');
          expect(logger.text()).not.toContain(value);
          expect(logger.text()).not.toContain(digestOf(value));
        } finally {
          await http.dataSource.query('ALTER TABLE sessions_away RENAME TO sessions');
        }
        const recovered = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
        expect(recovered.body.user.id).toBe('alice');
      });
    });

    describe('per controller with @UseGuards, default resolveUser and a custom cookie name', () => {
      let http: HttpApp;
      beforeAll(async () => {
        http = await bootHttpApp(platform, {
          database: db.options,
          session: { cookieName: 'sid' },
          controllers: [AuthFixtureController, GuardedFixtureController],
        });
      });
      afterAll(() => http.close());
      afterEach(() => http.dataSource.query('DELETE FROM sessions'));

      it('attaches { id: userId } as the user', async () => {
        const login = await request(http.server).post('/auth/login').send({ userId: 'u-42' }).expect(200);
        const cookie = cookiePair(login, 'sid');
        const response = await request(http.server).get('/guarded/me').set('Cookie', cookie).expect(200);
        expect(response.body).toEqual({ user: { id: 'u-42' } });
      });

      it('reads only the configured cookie name', async () => {
        const login = await request(http.server).post('/auth/login').send({ userId: 'u-42' }).expect(200);
        const value = cookiePair(login, 'sid').slice('sid='.length);
        const response = await request(http.server).get('/guarded/me').set('Cookie', `session_id=${value}`);
        expect(response.status).toBe(401);
      });

      it('honours @Public() on a handler of a guarded controller, and guards the rest', async () => {
        await request(http.server).get('/guarded/public').expect(200, { public: true });
        await request(http.server).get('/guarded/me').expect(401);
      });
    });
  });
});

// PostgreSQL only (PGlite cannot go down); nothing to cut without DATABASE_URL.
describe.each(HTTP_PLATFORMS)('AuthGuard on %s during a database outage', (_platformLabel, platform) => {
  describeEachWhere(POSTGRES_ONLY, 'postgres', 'with %s behind a TCP proxy', (_databaseLabel, database) => {
    let db: OpenDatabase;
    let proxy: TcpProxy;
    let http: HttpApp;
    const logger = new CapturingLogger();

    beforeAll(async () => {
      db = await database.open();
      proxy = await startTcpProxy(db.url!);
      http = await bootHttpApp(platform, {
        database: { type: 'postgres', url: proxy.urlFor(db.url!) },
        // Fail fast: a dead server must cost a request milliseconds, not the pg default wait.
        typeorm: { extra: { connectionTimeoutMillis: 1000, query_timeout: 1000, max: 4 } },
        session: { globalGuard: true },
        logger,
      });
    });
    afterAll(async () => {
      await http?.close();
      await proxy?.close();
      await db.dispose();
    });
    afterEach(() => proxy.restore());

    async function loggedIn(): Promise<{ cookie: string; value: string }> {
      const response = await request(http.server).post('/auth/login').send({ userId: 'alice' }).expect(200);
      const cookie = cookiePair(response);
      await request(http.server).get('/me').set('Cookie', cookie).expect(200);
      return { cookie, value: cookie.slice('session_id='.length) };
    }

    it('answers 503 while the connection is refused, and 200 again once it is back, without a restart', async () => {
      const { cookie, value } = await loggedIn();
      logger.lines.length = 0;
      proxy.cut();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const response = await request(http.server).get('/me').set('Cookie', cookie);
        statuses.push(response.status);
        expect(response.body).toEqual(UNAVAILABLE);
      }
      expect(statuses).toEqual([503, 503, 503, 503, 503]);
      const errors = logger.lines.filter(
        (line) => line.level === 'error' && line.message.includes('Session lookup failed'),
      );
      expect(errors).toHaveLength(5);
      expect(logger.text()).not.toContain(value);
      expect(logger.text()).not.toContain(digestOf(value));

      proxy.restore();
      const recovered = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
      expect(recovered.body.user).toEqual({ id: 'alice' });
    });

    it('answers 503 while the network hangs (the pool and query timeouts bound the wait), then recovers', async () => {
      const { cookie } = await loggedIn();
      proxy.cut('hang');
      const started = Date.now();
      const response = await request(http.server).get('/me').set('Cookie', cookie);
      expect(response.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000);
      proxy.restore();
      await request(http.server).get('/me').set('Cookie', cookie).expect(200);
    });

    it('never answers 401 or 200 to a cookie without a database, even for unknown values', async () => {
      await loggedIn();
      proxy.cut();
      const response = await request(http.server)
        .get('/me')
        .set('Cookie', 'session_id=' + 'Z'.repeat(43));
      expect(response.status).toBe(503);
      // A malformed value needs no database: still a plain 401.
      await request(http.server).get('/me').set('Cookie', 'session_id=bad value').expect(401);
    });
  });
});
