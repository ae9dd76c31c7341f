import { Controller, Get } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { jest } from '@jest/globals';
import pg from 'pg';
import request from 'supertest';
import { DataSource } from 'typeorm';
import {
  CurrentSession,
  NoSessionCache,
  Session,
  SessionConfigurationError,
  SessionModule,
  sessionMigrations,
  SessionService,
} from '../../src/index.js';
import { SessionStore } from '../../src/session.store.js';
import { typeOrmRoot } from '../support/apps.js';
import { endPool, TEST_DATABASES, type OpenDatabase } from '../support/databases.js';
import {
  AuthFixtureController,
  bootHttpApp,
  digestOf,
  HTTP_PLATFORMS,
  ProfileFixtureController,
  recordQueries,
  type HttpApp,
} from '../support/http-app.js';
import { cacheOf, invalidationAfter, listenUrlFor, statusOf } from './support.js';

/** Routes that always ask the database. */
@NoSessionCache()
@Controller('fresh')
class FreshController {
  @Get('me')
  me(@CurrentSession() session: Session) {
    return { id: session.id };
  }
}

/** One route on a cached controller that opts out by itself. */
@Controller('mixed')
class MixedController {
  @Get('cached')
  cached() {
    return { ok: true };
  }

  @NoSessionCache()
  @Get('fresh')
  fresh() {
    return { ok: true };
  }
}

const CONTROLLERS = [AuthFixtureController, ProfileFixtureController, FreshController, MixedController];

/** The lookups among `queries` (the guard's primary-key SELECT). */
const lookups = (queries: string[]) => queries.filter((query) => /^SELECT "user", floor/.test(query));

describe.each(TEST_DATABASES)('session cache on %s', (_label, database) => {
  describe.each(HTTP_PLATFORMS)('over %s', (_platformLabel, platform) => {
    let db: OpenDatabase;
    let http: HttpApp;
    let outside: pg.Pool | undefined;
    let service: SessionService;

    /** SQL from outside the package: another connection on a server; PGlite's one connection in-process. */
    const sql = async (text: string, params: unknown[] = []) => {
      if (outside) return (await outside.query(text, params)).rows;
      return http.dataSource.query(text, params);
    };

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        session: { globalGuard: true, cache: { heartbeatMs: 200, listenUrl: listenUrlFor(database, db) } },
        controllers: CONTROLLERS,
      });
      service = http.sessions;
      if (db.url) outside = new pg.Pool({ connectionString: db.url, max: 2 });
    });
    afterAll(async () => {
      await endPool(outside);
      await http?.close();
      await db?.dispose();
    });

    /** A session that this instance's cache holds (one miss fills it, the next answer costs no query). */
    async function cachedSession(user = 'alice'): Promise<string> {
      const cookie = await service.createSessionForUser(user);
      expect(await statusOf(http.server, cookie)).toBe(200);
      const { queries } = await recordQueries(http.dataSource, () => statusOf(http.server, cookie));
      expect(lookups(queries)).toEqual([]);
      return cookie;
    }

    async function lookupsFor(cookie: string, path = '/me'): Promise<{ status: number; lookups: number }> {
      const { result, queries } = await recordQueries(http.dataSource, () => statusOf(http.server, cookie, path));
      return { status: result, lookups: lookups(queries).length };
    }

    it('is subscribed after startup, and a cached session costs no query', async () => {
      const { cache } = cacheOf(http.app);
      expect(cache.subscribedNow).toBe(true);
      const cookie = await service.createSessionForUser('alice');
      expect(await lookupsFor(cookie)).toEqual({ status: 200, lookups: 1 });
      expect(await lookupsFor(cookie)).toEqual({ status: 200, lookups: 0 });
      const me = await request(http.server).get('/me').set('Cookie', `session_id=${cookie}`);
      expect(me.body).toMatchObject({ user: { id: 'alice' }, sessionId: digestOf(cookie) });
    });

    it('unknown and malformed values still answer 401 (and each unknown one asks the database)', async () => {
      const unknown = 'x'.repeat(43);
      expect(await lookupsFor(unknown)).toEqual({ status: 401, lookups: 1 });
      expect(await lookupsFor(unknown)).toEqual({ status: 401, lookups: 1 });
      expect(await lookupsFor('bad value;')).toEqual({ status: 401, lookups: 0 });
    });

    it('@NoSessionCache() on a controller or a handler asks the database every time', async () => {
      const cookie = await cachedSession();
      expect(await lookupsFor(cookie, '/fresh/me')).toEqual({ status: 200, lookups: 1 });
      expect(await lookupsFor(cookie, '/fresh/me')).toEqual({ status: 200, lookups: 1 });
      expect(await lookupsFor(cookie, '/mixed/fresh')).toEqual({ status: 200, lookups: 1 });
      expect(await lookupsFor(cookie, '/mixed/cached')).toEqual({ status: 200, lookups: 0 });
      // And it sees a revocation the cache has not heard of yet: this instance's cache still holds it.
      await http.dataSource.query('ALTER TABLE sessions DISABLE TRIGGER nts_session_cache_delete');
      try {
        await sql('DELETE FROM sessions WHERE id = $1', [digestOf(cookie)]);
        expect(await statusOf(http.server, cookie, '/fresh/me')).toBe(401);
        expect(await statusOf(http.server, cookie, '/mixed/cached')).toBe(200); // what the trigger prevents
      } finally {
        await http.dataSource.query('ALTER TABLE sessions ENABLE TRIGGER nts_session_cache_delete');
        cacheOf(http.app).cache.flush();
      }
    });

    describe('every change invalidates, from any source', () => {
      it("this instance's own writes are seen at once: logout, rotate, deleteSessionsByUserId, deleteUserSession, deleteById, deleteOtherSessions", async () => {
        const loggedOut = await cachedSession('bob');
        await request(http.server).post('/auth/logout').set('Cookie', `session_id=${loggedOut}`).expect(200);
        expect(await statusOf(http.server, loggedOut)).toBe(401);

        const rotated = await cachedSession('bob');
        const fresh = await service.rotate(rotated);
        expect(await statusOf(http.server, rotated)).toBe(401);
        expect(await statusOf(http.server, fresh!)).toBe(200);

        const first = await cachedSession('carol');
        const second = await cachedSession('carol');
        expect(await service.deleteSessionsByUserId('carol')).toBe(2);
        expect([await statusOf(http.server, first), await statusOf(http.server, second)]).toEqual([401, 401]);

        const device = await cachedSession('dana');
        expect(await service.deleteUserSession('dana', digestOf(device))).toBe(true);
        expect(await statusOf(http.server, device)).toBe(401);
        const admin = await cachedSession('dana');
        expect(await service.deleteById(digestOf(admin))).toBe(true);
        expect(await statusOf(http.server, admin)).toBe(401);

        const kept = await cachedSession('dave');
        const other = await cachedSession('dave');
        expect(await service.deleteOtherSessions('dave', kept)).toBe(1);
        expect([await statusOf(http.server, kept), await statusOf(http.server, other)]).toEqual([200, 401]);
      });

      it.each([
        ['DELETE', `DELETE FROM sessions WHERE id = $1`, { status: 401, user: null }],
        [
          'UPDATE of expires into the past',
          `UPDATE sessions SET expires = now() - interval '1 second' WHERE id = $1`,
          { status: 401, user: null },
        ],
        [
          'UPDATE of the user',
          `UPDATE sessions SET "user" = 'mallory' WHERE id = $1`,
          { status: 200, user: { id: 'mallory' } },
        ],
      ])(
        'SQL from outside the package (%s) reaches the cache through the trigger',
        async (_name, statement, expected) => {
          const cookie = await cachedSession('erin');
          const { listener } = cacheOf(http.app);
          const id = digestOf(cookie);
          const heard = invalidationAfter(listener, (payload) => payload.split(' ').includes(id));
          await sql(statement, [id]);
          await heard;
          // The next answer asks the database; the one after comes from memory again (while live) and agrees.
          expect((await lookupsFor(cookie)).lookups).toBe(1);
          const me = await request(http.server).get('/me').set('Cookie', `session_id=${cookie}`);
          expect({ status: me.status, user: me.status === 200 ? me.body.user : null }).toEqual(expected);
        },
      );

      it('TRUNCATE, and one statement touching more than 1000 live rows, flush every cache ("*")', async () => {
        const { cache, listener } = cacheOf(http.app);
        const cookie = await cachedSession('frank');
        await sql(
          `INSERT INTO sessions (id, "user", created, expires)
           SELECT 'bulk-' || g, 'bulk', now(), now() + interval '1 hour' FROM generate_series(1, 1001) g`,
        );
        let heard = invalidationAfter(listener, (payload) => payload === '*');
        await sql(`UPDATE sessions SET "user" = 'bulk2' WHERE "user" = 'bulk'`);
        await heard;
        expect(cache.size).toBe(0);
        expect(await statusOf(http.server, cookie)).toBe(200);
        await cachedSession('frank');
        heard = invalidationAfter(listener, (payload) => payload === '*');
        await sql('TRUNCATE sessions');
        await heard;
        expect(cache.size).toBe(0);
        expect(await statusOf(http.server, cookie)).toBe(401);
      });

      it('ids go in payloads under 8000 bytes (several NOTIFYs for a few hundred rows), all of them', async () => {
        const { listener } = cacheOf(http.app);
        await sql(
          `INSERT INTO sessions (id, "user", created, expires)
           SELECT md5('chunk' || g) || md5('chunk2' || g), 'chunky', now(), now() + interval '1 hour'
           FROM generate_series(1, 300) g`,
        );
        const payloads: string[] = [];
        const sentinel = 'sentinel-row';
        await sql(
          `INSERT INTO sessions (id, "user", created, expires) VALUES ($1, 'z', now(), now() + interval '1 hour')`,
          [sentinel],
        );
        const done = invalidationAfter(listener, (payload) => {
          payloads.push(payload);
          return payload === sentinel;
        });
        await sql(`DELETE FROM sessions WHERE "user" = 'chunky'`);
        await sql(`DELETE FROM sessions WHERE id = $1`, [sentinel]);
        await done;
        const ids = payloads.filter((payload) => payload !== sentinel).flatMap((payload) => payload.split(' '));
        expect(payloads.length).toBeGreaterThan(2);
        expect(Math.max(...payloads.map((payload) => Buffer.byteLength(payload)))).toBeLessThan(8000);
        expect(new Set(ids).size).toBe(300);
      });

      it('rows already expired (what the purge deletes) are not announced', async () => {
        const { listener } = cacheOf(http.app);
        await sql(
          `INSERT INTO sessions (id, "user", created, expires)
           SELECT 'old-' || g, 'old', now() - interval '2 hours', now() - interval '1 hour' FROM generate_series(1, 5) g`,
        );
        await sql(
          `INSERT INTO sessions (id, "user", created, expires) VALUES ('live-sentinel', 'z', now(), now() + interval '1 hour')`,
        );
        const payloads: string[] = [];
        const done = invalidationAfter(listener, (payload) => {
          payloads.push(payload);
          return payload === 'live-sentinel';
        });
        await sql(`DELETE FROM sessions WHERE "user" = 'old'`);
        await sql(`DELETE FROM sessions WHERE id = 'live-sentinel'`);
        await done;
        // Notifications arrive in commit order: the purge-like delete said nothing before the sentinel.
        expect(payloads).toEqual(['live-sentinel']);
      });
    });

    it('no stale fill: a lookup that read the row before an invalidation does not fill the cache after it', async () => {
      const { cache, listener } = cacheOf(http.app);
      const cookie = await service.createSessionForUser('gina');
      const id = digestOf(cookie);
      const store = http.app.get(SessionStore);
      const original = store.lookup.bind(store);
      let read!: () => void;
      const hasRead = new Promise<void>((resolve) => (read = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const spy = jest.spyOn(store, 'lookup').mockImplementation(async (lookupId: string) => {
        const found = await original(lookupId);
        read();
        await released; // the row is read; hold the answer until the invalidation has arrived
        return found;
      });
      try {
        const pending = statusOf(http.server, cookie);
        await hasRead;
        const heard = invalidationAfter(listener, (payload) => payload.split(' ').includes(id));
        await sql(`UPDATE sessions SET expires = now() - interval '1 second' WHERE id = $1`, [id]);
        await heard;
        release();
        expect(await pending).toBe(200); // it read the row while it was live: one answer, as without a cache
      } finally {
        spy.mockRestore();
      }
      expect(cache.get(id)).toBeNull();
      expect(await statusOf(http.server, cookie)).toBe(401);
    });
  });
});

describe.each(TEST_DATABASES)('session cache settings on %s', (_label, database) => {
  it('with the cache on and the trigger migration not run, startup fails naming the migration', async () => {
    const db = await database.open();
    const migrator = await new DataSource({
      ...db.options,
      entities: [Session],
      migrations: [sessionMigrations[0]],
    }).initialize();
    await migrator.runMigrations();
    await migrator.destroy();
    const moduleRef = await Test.createTestingModule({
      imports: [
        typeOrmRoot(db.options, { migrations: [sessionMigrations[0]] }),
        SessionModule.forRoot({ purge: false, cache: { listenUrl: listenUrlFor(database, db) } }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    try {
      const error = await app.init().then(
        () => null,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(SessionConfigurationError);
      expect((error as Error).message).toMatch(/AddSessionCacheTrigger1770500000000/);
    } finally {
      await app.close();
      await db.dispose();
    }
  });
});
