import { Controller, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import request from 'supertest';
import {
  CurrentSession,
  CurrentUser,
  RECENT_LOGIN_REQUIRED,
  RecentLoginRequiredException,
  RequireRecentLogin,
  type Session,
  SessionConfigurationError,
  SessionCookies,
  type SessionCookieResponse,
  type SessionRequest,
} from '../src/index.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import {
  AuthFixtureController,
  bootHttpApp,
  cookiePair,
  digestOf,
  HTTP_PLATFORMS,
  type HttpApp,
  recordQueries,
  setCookies,
} from './support/http-app.js';

/**
 * "Recent login" (issue 14): `@RequireRecentLogin(maxAgeMs)` answers 403
 * `RECENT_LOGIN_REQUIRED` when `Session.authenticatedAt` is older than that by the
 * database clock; `reauthenticate` makes it recent again under a new id. Time passes by
 * moving `authenticated_at` back in the database, never by sleeping.
 */
const FIVE_MINUTES = 5 * 60_000;

/** How many times the sensitive handlers ran. */
const runs = { deleteAccount: 0, sudo: 0 };

@Controller('account')
class SensitiveController {
  constructor(@Inject(SessionCookies) private readonly cookies: SessionCookies) {}

  @RequireRecentLogin(FIVE_MINUTES)
  @Post('delete')
  @HttpCode(200)
  deleteAccount(@CurrentUser() user: { id: string }) {
    runs.deleteAccount++;
    return { deleted: user.id };
  }

  /** What an app's "confirm your password" handler does once the password checked out. */
  @Post('reauthenticate')
  @HttpCode(200)
  async reauthenticate(@Req() req: SessionRequest, @Res({ passthrough: true }) response: SessionCookieResponse) {
    return { reauthenticated: (await this.cookies.reauthenticate(req, response)) !== null };
  }

  @Get('session')
  session(@CurrentSession() session: Session) {
    return { authenticatedAt: session.authenticatedAt.toISOString(), created: session.created.toISOString() };
  }
}

/** The decorator on a whole controller. */
@RequireRecentLogin(60_000)
@Controller('sudo')
class SudoController {
  @Get()
  sudo() {
    runs.sudo++;
    return { sudo: true };
  }
}

describe.each(HTTP_PLATFORMS)('recent login on %s', (_platformLabel, platform) => {
  describe.each(TEST_DATABASES)('with %s', (_databaseLabel, database) => {
    let db: OpenDatabase;
    let http: HttpApp;

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        // Sliding expiry on, with a ttl short enough to renew on demand.
        session: { globalGuard: true, rolling: true, ttl: 3_600_000 },
        controllers: [AuthFixtureController, SensitiveController, SudoController],
      });
    });
    afterAll(async () => {
      await http?.close();
      await db?.dispose();
    });
    afterEach(() => http.dataSource.query('DELETE FROM sessions'));

    async function login(userId = 'alice'): Promise<string> {
      const response = await request(http.server).post('/auth/login').send({ userId }).expect(200);
      return cookiePair(response);
    }
    const valueOf = (cookie: string) => cookie.slice('session_id='.length);

    /** As if the last login had been `seconds` ago (only `authenticated_at` moves). */
    const loggedInAgo = (cookie: string, seconds: number) =>
      http.dataSource.query(`UPDATE sessions SET authenticated_at = now() - $2 * interval '1 second' WHERE id = $1`, [
        digestOf(valueOf(cookie)),
        seconds,
      ]);
    const row = async (cookie: string) =>
      (
        await http.dataSource.query(
          `SELECT created, expires, authenticated_at AS "authenticatedAt", now() AS now FROM sessions WHERE id = $1`,
          [digestOf(valueOf(cookie))],
        )
      )[0] as { created: Date; expires: Date; authenticatedAt: Date; now: Date } | undefined;

    it('stamps authenticatedAt at login (the database clock), and lets a fresh login through', async () => {
      const cookie = await login();
      const stored = await row(cookie);
      expect(stored!.authenticatedAt).toEqual(stored!.created);
      const seen = await request(http.server).get('/account/session').set('Cookie', cookie).expect(200);
      expect(seen.body.authenticatedAt).toBe(stored!.created.toISOString());
      const before = runs.deleteAccount;
      await request(http.server).post('/account/delete').set('Cookie', cookie).expect(200, { deleted: 'alice' });
      expect(runs.deleteAccount).toBe(before + 1);
    });

    it('answers 403 RECENT_LOGIN_REQUIRED once the login is older than maxAgeMs, in the same one query', async () => {
      const cookie = await login();
      await loggedInAgo(cookie, 4 * 60);
      await request(http.server).post('/account/delete').set('Cookie', cookie).expect(200);
      await loggedInAgo(cookie, 6 * 60);
      const before = runs.deleteAccount;
      const { result: response, queries } = await recordQueries(http.dataSource, async () =>
        request(http.server).post('/account/delete').set('Cookie', cookie),
      );
      expect(response.status).toBe(403);
      expect(response.body).toEqual({
        statusCode: 403,
        error: 'Forbidden',
        code: RECENT_LOGIN_REQUIRED,
        maxAgeMs: FIVE_MINUTES,
        message: expect.stringContaining('Re-authentication required'),
      });
      expect(queries).toHaveLength(1);
      expect(runs.deleteAccount).toBe(before);
      // The session itself is fine: other routes answer, and no cookie was touched.
      expect(setCookies(response)).toEqual([]);
      await request(http.server).get('/account/session').set('Cookie', cookie).expect(200);
      // Without a session it stays a 401, not a prompt for a password.
      await request(http.server).post('/account/delete').expect(401);
    });

    it('reads the decorator from the controller too', async () => {
      const cookie = await login();
      await request(http.server).get('/sudo').set('Cookie', cookie).expect(200, { sudo: true });
      await loggedInAgo(cookie, 61);
      const response = await request(http.server).get('/sudo').set('Cookie', cookie);
      expect(response.status).toBe(403);
      expect(response.body.code).toBe(RECENT_LOGIN_REQUIRED);
      expect(response.body.maxAgeMs).toBe(60_000);
    });

    it('after reauthenticate: 200 under a new cookie value, the old value dead, created and expires kept', async () => {
      const cookie = await login();
      await loggedInAgo(cookie, 3600);
      await request(http.server).post('/account/delete').set('Cookie', cookie).expect(403);
      const old = await row(cookie);
      const [{ now: askedAt }] = await http.dataSource.query('SELECT now() AS now');

      const response = await request(http.server).post('/account/reauthenticate').set('Cookie', cookie).expect(200);
      expect(response.body).toEqual({ reauthenticated: true });
      const fresh = cookiePair(response);
      expect(fresh).not.toBe(cookie);

      expect(await row(cookie)).toBeUndefined();
      await request(http.server).get('/account/session').set('Cookie', cookie).expect(401);
      const stored = await row(fresh);
      // The database clock, between the moment we asked and now; an hour newer than before.
      expect(stored!.authenticatedAt.getTime()).toBeGreaterThanOrEqual(askedAt.getTime());
      expect(stored!.authenticatedAt.getTime()).toBeLessThanOrEqual(stored!.now.getTime());
      expect(stored!.authenticatedAt.getTime() - old!.authenticatedAt.getTime()).toBeGreaterThan(3_500_000);
      expect(stored!.created).toEqual(old!.created);
      expect(stored!.expires).toEqual(old!.expires);
      await request(http.server).post('/account/delete').set('Cookie', fresh).expect(200);
    });

    it('rotate keeps authenticatedAt: a rotation is not a login', async () => {
      const cookie = await login();
      await loggedInAgo(cookie, 3600);
      const before = await row(cookie);
      const rotated = await request(http.server).post('/auth/rotate').set('Cookie', cookie).expect(200);
      const fresh = cookiePair(rotated);
      expect((await row(fresh))!.authenticatedAt).toEqual(before!.authenticatedAt);
      await request(http.server).post('/account/delete').set('Cookie', fresh).expect(403);
    });

    it('sliding renewal never refreshes authenticatedAt; a refused request still refreshes the cookie it renewed', async () => {
      const cookie = await login();
      await loggedInAgo(cookie, 3600);
      // Less than half the ttl left: the next request renews `expires`.
      await http.dataSource.query(`UPDATE sessions SET expires = now() + interval '10 minutes' WHERE id = $1`, [
        digestOf(valueOf(cookie)),
      ]);
      const before = await row(cookie);
      const refused = await request(http.server).post('/account/delete').set('Cookie', cookie);
      expect(refused.status).toBe(403);
      const after = await row(cookie);
      expect(after!.expires.getTime()).toBeGreaterThan(before!.expires.getTime());
      expect(after!.authenticatedAt).toEqual(before!.authenticatedAt);
      // The browser learns the new expiry even on the 403, or its cookie would die before the session.
      expect(setCookies(refused)).toEqual([expect.stringMatching(new RegExp(`^${cookie};`))]);
      await request(http.server).get('/account/session').set('Cookie', cookie).expect(200);
      await request(http.server).post('/account/delete').set('Cookie', cookie).expect(403);
    });

    it('reads a NULL authenticated_at (a row an older instance wrote mid-deploy) as created', async () => {
      const cookie = await login();
      await http.dataSource.query(
        `UPDATE sessions SET authenticated_at = NULL, created = now() - interval '1 hour' WHERE id = $1`,
        [digestOf(valueOf(cookie))],
      );
      const seen = await request(http.server).get('/account/session').set('Cookie', cookie).expect(200);
      expect(seen.body.authenticatedAt).toBe(seen.body.created);
      await request(http.server).post('/account/delete').set('Cookie', cookie).expect(403);
      const [listed] = await http.sessions.listByUserId('alice');
      expect(listed.authenticatedAt).toEqual(listed.created);
      // rotate materializes it instead of carrying the NULL along.
      const fresh = cookiePair(await request(http.server).post('/auth/rotate').set('Cookie', cookie).expect(200));
      const stored = await row(fresh);
      expect(stored!.authenticatedAt).toEqual(stored!.created);
    });

    describe('SessionService.reauthenticate', () => {
      it('returns a new cookie value for a live session, null for a dead, unknown or malformed one', async () => {
        const value = await http.sessions.createSessionForUser('bob');
        const renewed = await http.sessions.reauthenticate(value);
        expect(renewed).toEqual(expect.any(String));
        expect(renewed).not.toBe(value);
        expect(await http.sessions.get(value)).toBeNull();
        expect((await http.sessions.get(renewed!))!.user).toBe('bob');

        await http.dataSource.query(`UPDATE sessions SET expires = now() - interval '1 second'`);
        expect(await http.sessions.reauthenticate(renewed!)).toBeNull();
        expect(await http.sessions.get(renewed!)).not.toBeNull(); // an expired row is not rotated
        expect(await http.sessions.reauthenticate('A'.repeat(43))).toBeNull();
        const { result, queries } = await recordQueries(http.dataSource, () =>
          http.sessions.reauthenticate('not a cookie value'),
        );
        expect(result).toBeNull();
        expect(queries).toEqual([]);
      });

      it('is one statement: of two concurrent calls with one value, exactly one wins', async () => {
        const value = await http.sessions.createSessionForUser('carol');
        const { result, queries } = await recordQueries(http.dataSource, () =>
          Promise.all([http.sessions.reauthenticateSession(value), http.sessions.reauthenticateSession(value)]),
        );
        expect(result.filter((issued) => issued !== null)).toHaveLength(1);
        expect(queries).toHaveLength(2);
        expect(await http.dataSource.query(`SELECT count(*)::int AS n FROM sessions WHERE "user" = 'carol'`)).toEqual([
          { n: 1 },
        ]);
      });

      it('SessionCookies.reauthenticate leaves the cookie alone without a live session', async () => {
        const response = await request(http.server)
          .post('/account/reauthenticate')
          .set('Cookie', 'session_id=' + 'Z'.repeat(43));
        expect(response.status).toBe(401); // the guard stops it first
        const cookies = http.app.get(SessionCookies);
        const headers: Record<string, unknown> = {};
        const fakeResponse = {
          getHeader: (name: string) => headers[name.toLowerCase()],
          setHeader: (name: string, value: unknown) => void (headers[name.toLowerCase()] = value),
        };
        const result = await cookies.reauthenticate(
          { headers: { cookie: 'session_id=' + 'Z'.repeat(43) } },
          fakeResponse,
        );
        expect(result).toBeNull();
        expect(headers).toEqual({});
      });
    });
  });
});

describe('@RequireRecentLogin', () => {
  it.each([0, -1, 1.5, Number.NaN, Infinity])('refuses maxAgeMs %p when the class is declared', (maxAgeMs) => {
    expect(() => RequireRecentLogin(maxAgeMs)).toThrow(SessionConfigurationError);
    expect(() => RequireRecentLogin(maxAgeMs)).toThrow(/positive whole number of milliseconds/);
  });

  it('answers with a RecentLoginRequiredException users can catch in filters', () => {
    const exception = new RecentLoginRequiredException(FIVE_MINUTES);
    expect(exception.getStatus()).toBe(403);
    expect(exception.getResponse()).toMatchObject({ code: RECENT_LOGIN_REQUIRED, maxAgeMs: FIVE_MINUTES });
  });
});
