import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { jest } from '@jest/globals';
import { Controller, Post, HttpCode } from '@nestjs/common';
import pg from 'pg';
import request from 'supertest';
import { RECENT_LOGIN_REQUIRED, RequireRecentLogin, SessionPurgeService } from '../../src/index.js';
import {
  AuthFixtureController,
  bootHttpApp,
  digestOf,
  type HttpApp,
  ProfileFixtureController,
} from '../support/http-app.js';
import { TEST_DATABASES, type OpenDatabase } from '../support/databases.js';
import { fakeDateOnly } from '../support/fake-date.js';
import { cacheSetting, withCacheModes } from '../support/cache-modes.js';
import { cacheOf, invalidationAfter } from '../cache/support.js';

/**
 * Case 5 of issue 7, one clock: with the app at UTC+14 (TZ=Pacific/Kiritimati) and
 * the database session at UTC-10 (America/Adak), a session made to expire in N
 * seconds is valid before and invalid after, and the four judges agree: the guard,
 * `getUserIdFromSessionId`, `Session.isExpired()` and the purge. Then the app's clock
 * is set 10 minutes fast and slow: the database's `now()` still decides.
 *
 * `@RequireRecentLogin` is judged by the same clock: a login 4 minutes old passes a
 * 5-minute limit and one 6 minutes old does not, with the app's clock 10 minutes off
 * either way.
 *
 * Time passes by moving the rows' timestamps back, not by sleeping. Node fixes its
 * time zone at startup, so when this file runs in another zone (a plain `npm test`)
 * it runs itself again in a child jest at TZ=Pacific/Kiritimati.
 */
const APP_TIME_ZONE = 'Pacific/Kiritimati';
const APP_UTC_OFFSET_MINUTES = -14 * 60; // getTimezoneOffset() is UTC minus local
const DATABASE_TIME_ZONE = 'America/Adak';
const TTL_SECONDS = 3600;
const JUDGES = ['guard', 'getUserIdFromSessionId', 'isExpired()', 'purge'] as const;
type Verdicts = Record<(typeof JUDGES)[number], 'live' | 'expired'>;

/** A route that needs a login from the last 5 minutes. */
@Controller('sensitive')
class SensitiveController {
  @RequireRecentLogin(5 * 60_000)
  @Post()
  @HttpCode(200)
  act() {
    return { ok: true };
  }
}

const inAppTimeZone = new Date('2026-06-01T00:00:00Z').getTimezoneOffset() === APP_UTC_OFFSET_MINUTES;

if (!inAppTimeZone) {
  describe('one clock', () => {
    it(`runs in a child jest at TZ=${APP_TIME_ZONE}`, async () => {
      const root = resolve(import.meta.dirname, '../..');
      const child = await promisify(execFile)(
        process.execPath,
        [
          '--experimental-vm-modules',
          'node_modules/jest/bin/jest.js',
          '--runInBand',
          '--ci',
          'test/hardening/clock.spec.ts',
        ],
        { cwd: root, env: { ...process.env, TZ: APP_TIME_ZONE, NODE_OPTIONS: '' }, timeout: 240_000 },
      ).catch((error: { stdout?: string; stderr?: string }) => {
        throw new Error(`the clock suite failed at TZ=${APP_TIME_ZONE}:\n${error.stderr ?? ''}${error.stdout ?? ''}`);
      });
      const output = child.stderr + child.stdout;
      for (const line of output.split('\n').filter((text) => text.startsWith('[hardening:clock]'))) {
        process.stderr.write(`${line}\n`);
      }
      // Every database ran, and nothing was skipped: the zone and recent-login cases everywhere, the skew
      // case on servers. Twice: with the cache off and on.
      const expected = 2 * (2 * TEST_DATABASES.length + TEST_DATABASES.filter(([, db]) => db.kind !== 'pglite').length);
      expect(output).toMatch(new RegExp(`Tests: +${expected} passed, ${expected} total`));
    }, 300_000);
  });
} else {
  describe.each(withCacheModes(TEST_DATABASES))(
    'one clock on %s, %s',
    (databaseLabel, cacheLabel, database, cacheOn) => {
      let db: OpenDatabase;
      let http: HttpApp;
      let purge: SessionPurgeService;

      beforeAll(async () => {
        db = await database.open();
        if (db.url) {
          // Every connection the app opens starts in the database's zone. Set on the server
          // itself, before any connection: PgBouncer replays the zone its first one reported.
          const server = new URL(process.env.DATABASE_URL!);
          server.pathname = new URL(db.url).pathname;
          const name = server.pathname.slice(1);
          const admin = new pg.Client({ connectionString: server.toString() });
          await admin.connect();
          await admin.query(`ALTER DATABASE ${name} SET timezone TO '${DATABASE_TIME_ZONE}'`);
          await admin.end();
        }
        http = await bootHttpApp('express', {
          database: db.options,
          session: {
            globalGuard: true,
            ttl: TTL_SECONDS * 1000,
            purge: false,
            cache: cacheSetting(cacheOn, database, db),
          },
          controllers: [AuthFixtureController, SensitiveController, ProfileFixtureController],
        });
        // PGlite has one connection: setting its session zone is setting every query's.
        if (!db.url) await http.dataSource.query(`SET TIME ZONE '${DATABASE_TIME_ZONE}'`);
        purge = http.app.get(SessionPurgeService);
      });
      afterAll(async () => {
        await http?.close();
        await db?.dispose();
      });
      afterEach(async () => {
        jest.useRealTimers();
        await http.dataSource.query('DELETE FROM sessions');
      });

      /** Sessions for each judge, made the way `make` makes them (so each judge rules on its own row). */
      async function sessionsPerJudge(make: (user: string) => Promise<string>) {
        const cookies = {} as Record<(typeof JUDGES)[number], string>;
        for (const judge of JUDGES) cookies[judge] = await make(`user-${judge}`);
        return cookies;
      }

      /** Moves the sessions `seconds` into the past: as if that much time had gone by. */
      async function letTimePass(cookies: Record<string, string>, seconds: number) {
        // With the cache on, the change reaches it as a NOTIFY: wait for it, as a client would see it a few ms later.
        const heard = cacheOn
          ? invalidationAfter(cacheOf(http.app).listener, (payload) => payload.includes(digestOf(cookies.guard)))
          : null;
        await http.dataSource.query(
          `UPDATE sessions SET created = created - $1 * interval '1 second', expires = expires - $1 * interval '1 second'
         WHERE id = ANY($2)`,
          [seconds, Object.values(cookies).map(digestOf)],
        );
        await heard;
      }

      /** What each judge says about its session. The purge goes last: it deletes every expired row. */
      async function verdicts(cookies: Record<(typeof JUDGES)[number], string>, databaseNow?: Date): Promise<Verdicts> {
        const guard = await request(http.server).get('/me').set('Cookie', `session_id=${cookies.guard}`);
        // With the cache on, asked again: a live session now comes from memory, and must get the same verdict.
        const again = cacheOn
          ? (await request(http.server).get('/me').set('Cookie', `session_id=${cookies.guard}`)).status
          : guard.status;
        const user = await http.sessions.getUserIdFromSessionId(cookies.getUserIdFromSessionId);
        const row = await http.sessions.get(cookies['isExpired()']);
        await purge.purgeExpired();
        const purged = (await http.sessions.get(cookies.purge)) === null;
        return {
          guard:
            again !== guard.status
              ? (`${guard.status}, then ${again} from the cache` as never)
              : guard.status === 200
                ? 'live'
                : guard.status === 401
                  ? 'expired'
                  : (`status ${guard.status}` as never),
          getUserIdFromSessionId: user === 'user-getUserIdFromSessionId' ? 'live' : 'expired',
          'isExpired()': row!.isExpired(databaseNow) ? 'expired' : 'live',
          purge: purged ? 'expired' : 'live',
        };
      }

      const all = (verdict: 'live' | 'expired'): Verdicts =>
        Object.fromEntries(JUDGES.map((judge) => [judge, verdict])) as Verdicts;

      it(`app at ${APP_TIME_ZONE}, database at ${DATABASE_TIME_ZONE}: live before ${TTL_SECONDS} s, expired after, all four judges agree`, async () => {
        // The zones are really in effect.
        expect(new Date().getTimezoneOffset()).toBe(APP_UTC_OFFSET_MINUTES);
        for (let i = 0; i < 3; i++) {
          expect(await http.dataSource.query('SHOW TimeZone')).toEqual([{ TimeZone: DATABASE_TIME_ZONE }]);
        }
        const [{ local }] = await http.dataSource.query(`SELECT now()::text AS local`);
        expect(local).toMatch(/-(10|09)$/); // Adak: UTC-10, UTC-9 in summer

        const writers: [string, (user: string) => Promise<string>][] = [
          ['createSessionForUser (stamped by the database)', (user) => http.sessions.createSessionForUser(user)],
          [
            'create() with the app clock',
            async (user) => {
              const cookie = `clock-${user}-${Math.random().toString(36).slice(2)}`;
              const created = new Date();
              await http.sessions.create({
                id: cookie,
                user,
                created,
                expires: new Date(created.getTime() + TTL_SECONDS * 1000),
              });
              return cookie;
            },
          ],
        ];
        for (const [writer, make] of writers) {
          const cookies = await sessionsPerJudge(make);
          // The stored lifetime is the ttl, whatever either zone says.
          const lifetimes = await http.dataSource.query(
            `SELECT round(extract(epoch FROM expires - created))::int AS seconds FROM sessions WHERE id = ANY($1)`,
            [Object.values(cookies).map(digestOf)],
          );
          expect(lifetimes).toEqual(JUDGES.map(() => ({ seconds: TTL_SECONDS })));

          const timeline: [string, Verdicts][] = [];
          timeline.push(['just created', await verdicts(cookies)]);
          await letTimePass(cookies, TTL_SECONDS - 2);
          timeline.push([`${TTL_SECONDS - 2} s later`, await verdicts(cookies)]);
          await letTimePass(cookies, 3);
          timeline.push([`${TTL_SECONDS + 1} s later`, await verdicts(cookies)]);
          expect({ writer, timeline }).toEqual({
            writer,
            timeline: [
              ['just created', all('live')],
              [`${TTL_SECONDS - 2} s later`, all('live')],
              [`${TTL_SECONDS + 1} s later`, all('expired')],
            ],
          });
          process.stderr.write(
            `[hardening:clock] ${databaseLabel}, ${cacheLabel}, ${writer}: app UTC+14, database ${local.slice(-3)}; ` +
              `all four judges: live at 0 s and ${TTL_SECONDS - 2} s, expired at ${TTL_SECONDS + 1} s\n`,
          );
        }
      });

      it('@RequireRecentLogin measures authenticatedAt with the database clock, the app clock right or 10 minutes off', async () => {
        // PGlite reads the app's clock: faking Date would move its clock too, so it checks the zones only.
        const skews = database.kind === 'pglite' ? [0] : [0, 10, -10];
        const seen: [number, number, number, number][] = [];
        for (const skewMinutes of skews) {
          const cookieValue = await http.sessions.createSessionForUser('alice');
          if (skewMinutes !== 0) fakeDateOnly(Date.now() + skewMinutes * 60_000, { advance: true });
          const loggedInAgo = async (minutes: number, value: string) => {
            // With the cache on, the change reaches it as a NOTIFY: wait for it, as a client would see it a few ms later.
            const heard = cacheOn
              ? invalidationAfter(cacheOf(http.app).listener, (payload) => payload.includes(digestOf(value)))
              : null;
            await http.dataSource.query(
              `UPDATE sessions SET authenticated_at = now() - $2 * interval '1 minute' WHERE id = $1`,
              [digestOf(value), minutes],
            );
            await heard;
          };
          const act = (value: string) => request(http.server).post('/sensitive').set('Cookie', `session_id=${value}`);
          await loggedInAgo(4, cookieValue);
          const recent = await act(cookieValue);
          await loggedInAgo(6, cookieValue);
          const stale = await act(cookieValue);
          expect(stale.body.code).toBe(RECENT_LOGIN_REQUIRED);
          const renewed = await http.sessions.reauthenticate(cookieValue);
          const after = await act(renewed!);
          jest.useRealTimers();
          seen.push([skewMinutes, recent.status, stale.status, after.status]);
        }
        expect(seen).toEqual(skews.map((skew) => [skew, 200, 403, 200]));
        process.stderr.write(
          `[hardening:clock] ${databaseLabel}/${cacheLabel}: @RequireRecentLogin(5 min): 4 min old 200, 6 min old 403, ` +
            `reauthenticated 200, app clock off by ${skews.join('/')} min\n`,
        );
      });

      // PGlite runs inside the app and reads the app's clock: there is no second clock to disagree.
      if (database.kind !== 'pglite')
        it('with the app clock 10 minutes fast or slow, the database clock still decides', async () => {
          for (const skewMinutes of [10, -10]) {
            const cookies = await sessionsPerJudge((user) => http.sessions.createSessionForUser(user));
            // Only Date is faked: timers, the event loop and the drivers run as usual.
            fakeDateOnly(Date.now() + skewMinutes * 60_000, { advance: true });
            const databaseNow = async () => new Date((await http.dataSource.query('SELECT now() AS now'))[0].now);
            expect(Math.round((Date.now() - (await databaseNow()).getTime()) / 60_000)).toBe(skewMinutes);

            await letTimePass(cookies, TTL_SECONDS - 2);
            const before = await verdicts(cookies, await databaseNow());
            await letTimePass(cookies, 3);
            const after = await verdicts(cookies, await databaseNow());
            jest.useRealTimers();
            expect({ skewMinutes, before, after }).toEqual({ skewMinutes, before: all('live'), after: all('expired') });
            await http.dataSource.query('DELETE FROM sessions');
          }
          process.stderr.write(
            `[hardening:clock] ${databaseLabel}, ${cacheLabel}: app clock ±10 min off; guard, getUserIdFromSessionId, purge and isExpired(databaseNow) still agree\n`,
          );
        });
    },
  );
}
