import pg from 'pg';
import request from 'supertest';
import { endPool, TEST_DATABASES, type OpenDatabase } from '../support/databases.js';
import { bootHttpApp, digestOf, HTTP_PLATFORMS, recordQueries, setCookies, type HttpApp } from '../support/http-app.js';
import { cacheOf, invalidationAfter, listenUrlFor } from './support.js';

/**
 * Points 4 and 5 of issue 12 with the cache on: a cached entry's expiry is judged by the
 * database clock, sliding expiry still writes at most once per half-`ttl` (and the cache
 * then holds the new expiry), and `absoluteTimeout` still caps a session the cache holds.
 * (The one-clock suite, test/hardening/clock.spec.ts, runs with the cache on as well.)
 */
const TTL_MS = 3_600_000;
const ABSOLUTE_MS = 7_200_000;

const lookups = (queries: string[]) => queries.filter((query) => /^SELECT "user", floor/.test(query)).length;
const writes = (queries: string[]) => queries.filter((query) => /UPDATE|DELETE|INSERT/.test(query)).length;

describe.each(TEST_DATABASES)('cached sessions expire by the database clock on %s', (_label, database) => {
  describe.each(HTTP_PLATFORMS)('over %s', (_platformLabel, platform) => {
    let db: OpenDatabase;
    let http: HttpApp;
    let outside: pg.Pool | undefined;

    const sql = async (text: string, params: unknown[] = []) =>
      outside ? (await outside.query(text, params)).rows : http.dataSource.query(text, params);

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        session: {
          globalGuard: true,
          rolling: true,
          ttl: TTL_MS,
          absoluteTimeout: ABSOLUTE_MS,
          cache: { heartbeatMs: 200, listenUrl: listenUrlFor(database, db) },
        },
      });
      if (db.url) outside = new pg.Pool({ connectionString: db.url, max: 2 });
    });
    afterAll(async () => {
      await endPool(outside);
      await http?.close();
      await db?.dispose();
    });

    const me = async (cookie: string) => {
      const { result, queries } = await recordQueries(http.dataSource, () =>
        request(http.server).get('/me').set('Cookie', `session_id=${cookie}`),
      );
      return { status: result.status, body: result.body, renewed: setCookies(result).length > 0, queries };
    };

    it('sliding expiry: one write when past half the ttl, then answered from memory with the new expiry', async () => {
      const cookie = await http.sessions.createSessionForUser('rolling');
      const id = digestOf(cookie);
      await me(cookie);
      expect(lookups((await me(cookie)).queries)).toBe(0);
      // Past half the ttl: the UPDATE also tells the cache (as any change from outside does).
      const heard = invalidationAfter(cacheOf(http.app).listener, (payload) => payload.split(' ').includes(id));
      await sql(`UPDATE sessions SET expires = now() + interval '1000 seconds' WHERE id = $1`, [id]);
      await heard;
      const renewal = await me(cookie);
      expect(renewal.status).toBe(200);
      expect(renewal.renewed).toBe(true);
      expect(writes(renewal.queries)).toBe(1);
      const [{ expires }] = await sql(`SELECT expires FROM sessions WHERE id = $1`, [id]);
      const after: { lookups: number; writes: number; expires: string; renewed: boolean }[] = [];
      for (let i = 0; i < 5; i++) {
        const answer = await me(cookie);
        after.push({
          lookups: lookups(answer.queries),
          writes: writes(answer.queries),
          expires: answer.body.expires,
          renewed: answer.renewed,
        });
      }
      // At most one more lookup (the renewal's own NOTIFY may arrive after the cache kept the
      // new row), never a second write, and the cached entry carries the renewed expiry.
      expect(after.reduce((sum, answer) => sum + answer.lookups, 0)).toBeLessThanOrEqual(1);
      expect(after.map((answer) => [answer.writes, answer.expires, answer.renewed])).toEqual(
        after.map(() => [0, new Date(expires).toISOString(), false]),
      );
      expect(lookups((await me(cookie)).queries)).toBe(0);
    });

    it('absoluteTimeout caps a cached session when its time comes, with no change to the row to announce it', async () => {
      const cookie = 'capped-session-value-0123456789abcdefghijk';
      const id = digestOf(cookie);
      // Created so that its absolute cap is 600 ms from the database's now; expires much later.
      // `last_seen` as a login sets it: with none, the first request's activity write would
      // (rightly) take the entry out of the cache, which is not what this test is about.
      await sql(
        `INSERT INTO sessions (id, "user", created, expires, last_seen)
         VALUES ($1, 'capped', now() - $2 * interval '1 millisecond' + interval '600 milliseconds', now() + interval '1 day', now())`,
        [id, ABSOLUTE_MS],
      );
      await me(cookie);
      const cached = await me(cookie);
      expect({ status: cached.status, lookups: lookups(cached.queries) }).toEqual({ status: 200, lookups: 0 });
      // Real time passes on the database's clock (no row changes, so no NOTIFY to help the cache).
      const [{ cap }] = await sql(`SELECT created + $2 * interval '1 millisecond' AS cap FROM sessions WHERE id = $1`, [
        id,
        ABSOLUTE_MS,
      ]);
      for (;;) {
        const [{ past }] = await sql(`SELECT now() >= $1::timestamptz AS past`, [cap]);
        if (past) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const capped = await me(cookie);
      expect(capped.status).toBe(401);
      expect(lookups(capped.queries)).toBe(1);
    });
  });
});
