import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { jest } from '@jest/globals';
import pg from 'pg';
import request from 'supertest';
import { SessionPurgeService } from '../../src/index.js';
import { bootHttpApp, digestOf, type HttpApp } from '../support/http-app.js';
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
      // Every database ran, and nothing was skipped: the zone case everywhere, the skew case on servers.
      // Twice: with the cache off and on.
      const expected = 2 * (TEST_DATABASES.length + TEST_DATABASES.filter(([, db]) => db.kind !== 'pglite').length);
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
