import type { INestApplicationContext } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { SessionService, type SessionModuleForRootOptions } from '../src/index.js';
import { compileSessionModule } from './support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import {
  bootHttpApp,
  cookiePair,
  digestOf,
  HTTP_PLATFORMS,
  type HttpApp,
  recordQueries,
  setCookies,
} from './support/http-app.js';

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;

/**
 * Moves a session in time: `created` and `expires` relative to the database's
 * `now()`, in minutes (negative = past). The clock is the database's, as in the package.
 */
async function place(dataSource: DataSource, cookieValue: string, createdMinutes: number, expiresMinutes: number) {
  await dataSource.query(
    `UPDATE sessions SET created = now() + $2::float8 * interval '1 minute', expires = now() + $3::float8 * interval '1 minute'
     WHERE id = $1`,
    [digestOf(cookieValue), createdMinutes, expiresMinutes],
  );
}

/** The stored row of a cookie value with the database's `now()` beside it. */
async function stored(dataSource: DataSource, cookieValue: string) {
  const [row] = await dataSource.query('SELECT created, expires, now() AS now FROM sessions WHERE id = $1', [
    digestOf(cookieValue),
  ]);
  return row as { created: Date; expires: Date; now: Date } | undefined;
}

describe.each(TEST_DATABASES)('SessionService devices, rotation and expiry on %s', (_label, database) => {
  let db: OpenDatabase;
  let app: INestApplicationContext;
  let sessions: SessionService;
  let dataSource: DataSource;

  async function boot(options: SessionModuleForRootOptions) {
    app = await (await compileSessionModule(db.options, options)).init();
    sessions = app.get(SessionService);
    dataSource = app.get(getDataSourceToken());
  }

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(() => db.dispose());
  afterEach(() => dataSource.query('DELETE FROM sessions'));

  describe('rolling, ttl 1h, absoluteTimeout 3h', () => {
    beforeAll(() => boot({ ttl: HOUR, rolling: true, absoluteTimeout: 3 * HOUR }));
    afterAll(() => app.close());

    it('rotate replaces the value, keeps user, created and expires, and kills the old value at once', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -10, 50);
      const before = (await sessions.get(value))!;
      const rotated = await sessions.rotate(value);
      expect(rotated).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rotated).not.toBe(value);
      expect(await sessions.get(value)).toBeNull();
      const after = (await sessions.get(rotated!))!;
      expect(after.user).toBe('u');
      expect(after.created).toEqual(before.created);
      expect(after.expires).toEqual(before.expires);
      expect(await dataSource.query('SELECT id FROM sessions')).toEqual([{ id: digestOf(rotated!) }]);
      expect(await sessions.rotate(value)).toBeNull();
    });

    it('rotate returns null for unknown, malformed and expired sessions and leaves them alone', async () => {
      const expired = await sessions.createSessionForUser('u');
      await place(dataSource, expired, -90, -1);
      expect(await sessions.rotate(expired)).toBeNull();
      expect(await sessions.rotate('A'.repeat(43))).toBeNull();
      expect(await sessions.rotate('bad value')).toBeNull();
      expect(await dataSource.query('SELECT id FROM sessions')).toEqual([{ id: digestOf(expired) }]);
    });

    it('concurrent rotations of one value: exactly one wins', async () => {
      const value = await sessions.createSessionForUser('u');
      const results = await Promise.all(Array.from({ length: 6 }, () => sessions.rotate(value)));
      const winners = results.filter((result) => result !== null);
      expect(winners).toHaveLength(1);
      expect(await dataSource.query('SELECT id FROM sessions')).toEqual([{ id: digestOf(winners[0]!) }]);
    });

    it('listByUserId lists the user’s live sessions newest first, by stored id', async () => {
      const [oldest, middle, newest, expired, tooOld, other] = [
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('v'),
      ];
      await place(dataSource, oldest, -50, 10);
      await place(dataSource, middle, -30, 30);
      await place(dataSource, newest, -5, 55);
      await place(dataSource, expired, -1, -0.5);
      await place(dataSource, tooOld, -181, 30); // past created + absoluteTimeout though expires is ahead
      await place(dataSource, other, -1, 59);
      const listed = await sessions.listByUserId('u');
      expect(listed.map((session) => session.id)).toEqual([newest, middle, oldest].map(digestOf));
      expect(listed.every((session) => session.user === 'u')).toBe(true);
      expect(await sessions.listByUserId('nobody')).toEqual([]);
      expect(await sessions.listByUserId('')).toEqual([]);
    });

    it('deleteById deletes by the listed (hashed) id, not by cookie value', async () => {
      const keep = await sessions.createSessionForUser('u');
      const revoke = await sessions.createSessionForUser('u');
      expect(await sessions.deleteById(revoke)).toBe(false); // a cookie value is not a stored id
      expect(await sessions.deleteById(digestOf(revoke))).toBe(true);
      expect(await sessions.deleteById(digestOf(revoke))).toBe(false);
      expect(await sessions.deleteById('bad value')).toBe(false);
      expect(await sessions.getUserIdFromSessionId(revoke)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(keep)).toBe('u');
    });

    it("deleteUserSession deletes a listed id of that user only, never another user's", async () => {
      const mine = await sessions.createSessionForUser('u');
      const theirs = await sessions.createSessionForUser('v');
      expect(await sessions.deleteUserSession('u', digestOf(theirs))).toBe(false);
      expect(await sessions.getUserIdFromSessionId(theirs)).toBe('v');
      expect(await sessions.deleteUserSession('u', mine)).toBe(false); // a cookie value is not a stored id
      expect(await sessions.deleteUserSession('', digestOf(mine))).toBe(false);
      expect(await sessions.deleteUserSession('u', 'bad value')).toBe(false);
      expect(await sessions.getUserIdFromSessionId(mine)).toBe('u');
      expect(await sessions.deleteUserSession('u', digestOf(mine))).toBe(true);
      expect(await sessions.deleteUserSession('u', digestOf(mine))).toBe(false);
      expect(await sessions.getUserIdFromSessionId(mine)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(theirs)).toBe('v');
    });

    it('deleteOtherSessions keeps only the given session of that user', async () => {
      const current = await sessions.createSessionForUser('u');
      await sessions.createSessionForUser('u');
      await sessions.createSessionForUser('u');
      const other = await sessions.createSessionForUser('v');
      expect(await sessions.deleteOtherSessions('u', current)).toBe(2);
      expect(await sessions.deleteOtherSessions('u', current)).toBe(0);
      expect(await sessions.listByUserId('u')).toHaveLength(1);
      expect(await sessions.getUserIdFromSessionId(current)).toBe('u');
      expect(await sessions.getUserIdFromSessionId(other)).toBe('v');
    });

    it('deleteOtherSessions deletes nothing unless the kept value is a session of that user', async () => {
      const mine = [await sessions.createSessionForUser('u'), await sessions.createSessionForUser('u')];
      const theirs = await sessions.createSessionForUser('v');
      const { result, queries } = await recordQueries(dataSource, async () => {
        const counts: number[] = [];
        for (const malformed of ['', 'bad value', 'x'.repeat(1025), undefined, null, 42]) {
          counts.push(await sessions.deleteOtherSessions('u', malformed as string));
        }
        return counts;
      });
      expect(result).toEqual([0, 0, 0, 0, 0, 0]);
      expect(queries).toEqual([]); // answered without a query
      expect(await sessions.deleteOtherSessions('u', 'A'.repeat(43))).toBe(0); // no such session
      expect(await sessions.deleteOtherSessions('u', digestOf(mine[0]))).toBe(0); // a stored id is no cookie value
      expect(await sessions.deleteOtherSessions('u', theirs)).toBe(0); // someone else's session
      for (const value of mine) expect(await sessions.getUserIdFromSessionId(value)).toBe('u');
      expect(await sessions.getUserIdFromSessionId(theirs)).toBe('v');
      expect(await sessions.deleteOtherSessions('u', mine[1])).toBe(1);
      expect(await sessions.getUserIdFromSessionId(mine[1])).toBe('u');
    });

    it('validate does not write while more than half of ttl remains', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -20, 40);
      const { result, queries } = await recordQueries(dataSource, () => sessions.validate(value));
      expect(result).toMatchObject({ valid: true, renewedExpires: null });
      expect(queries).toHaveLength(1);
    });

    it('validate pushes expires to now + ttl once less than half remains, then not again', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -40, 20);
      const { result, queries } = await recordQueries(dataSource, () => sessions.validate(value));
      expect(queries).toHaveLength(2);
      expect(result.valid).toBe(true);
      const renewed = result.valid ? result.renewedExpires : null;
      const row = (await stored(dataSource, value))!;
      expect(renewed).toEqual(row.expires);
      expect(row.expires.getTime() - row.now.getTime()).toBeGreaterThan(HOUR - MINUTE);
      expect(row.expires.getTime() - row.now.getTime()).toBeLessThanOrEqual(HOUR);
      const again = await recordQueries(dataSource, () => sessions.validate(value));
      expect(again.result).toMatchObject({ valid: true, renewedExpires: null });
      expect(again.queries).toHaveLength(1);
    });

    it('rolling never extends past created + absoluteTimeout, and stops writing once it reaches it', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -170, 5); // the cap, created + 3h, is 10 minutes away
      const first = await sessions.validate(value);
      const row = (await stored(dataSource, value))!;
      expect(row.expires.getTime()).toBe(row.created.getTime() + 3 * HOUR);
      expect(first).toMatchObject({ valid: true, renewedExpires: row.expires });
      const { result, queries } = await recordQueries(dataSource, () => sessions.validate(value));
      expect(result).toMatchObject({ valid: true, renewedExpires: null });
      expect(queries).toHaveLength(1);
    });

    it('a session older than absoluteTimeout is invalid and deleted even though expires is ahead', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -181, 30);
      expect(await sessions.validate(value)).toEqual({ valid: false });
      expect(await stored(dataSource, value)).toBeUndefined();
    });

    it('an expired session is invalid and deleted', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -61, -1);
      expect(await sessions.validate(value)).toEqual({ valid: false });
      expect(await stored(dataSource, value)).toBeUndefined();
    });
  });

  describe('not rolling, ttl 1h, absoluteTimeout 2h', () => {
    beforeAll(() => boot({ ttl: HOUR, absoluteTimeout: 2 * HOUR }));
    afterAll(() => app.close());

    it('never renews, however little time is left', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -55, 5);
      const { result, queries } = await recordQueries(dataSource, () => sessions.validate(value));
      expect(result).toMatchObject({ valid: true, renewedExpires: null });
      expect(queries).toHaveLength(1);
    });

    it('applies absoluteTimeout to every read', async () => {
      const value = await sessions.createSessionForUser('u');
      await place(dataSource, value, -121, 30);
      expect(await sessions.getUserIdFromSessionId(value)).toBeNull();
      expect(await sessions.getByUserId('u')).toBeNull();
      expect(await sessions.listByUserId('u')).toEqual([]);
      expect(await sessions.rotate(value)).toBeNull();
      expect(await dataSource.query('SELECT id FROM sessions')).toEqual([{ id: digestOf(value) }]);
      await place(dataSource, value, -119, 30);
      expect(await sessions.getUserIdFromSessionId(value)).toBe('u');
      expect(await sessions.listByUserId('u')).toHaveLength(1);
    });

    it('caps the expiry of sessions it creates at created + absoluteTimeout', async () => {
      const created = new Date(Date.now() - 90 * MINUTE);
      await sessions.create({ id: 'manual', user: 'u', created, expires: new Date(created.getTime() + 10 * HOUR) });
      const session = (await sessions.get('manual'))!;
      expect(session.expires.getTime()).toBe(created.getTime() + 2 * HOUR);
    });
  });

  describe('with hashSessionIds: false (cookie values stored as-is)', () => {
    beforeAll(() => boot({ hashSessionIds: false }));
    afterAll(() => app.close());

    it('hands out Session.id as the digest of the cookie value, never the value, and revokes by it', async () => {
      const mine = await sessions.createSessionForUser('u');
      const other = await sessions.createSessionForUser('u');
      const theirs = await sessions.createSessionForUser('v');
      // A row a Platforma app wrote: its id is a cookie value too.
      const platforma = '3f0c2a7e-8d6b-4b6e-9a53-1f2b0c9d8e7a';
      await dataSource.query(
        `INSERT INTO sessions (id, "user", created, expires) VALUES ($1, 'u', now() - interval '1 hour', now() + interval '1 hour')`,
        [platforma],
      );
      expect((await dataSource.query('SELECT id FROM sessions WHERE id = $1', [mine])).length).toBe(1); // stored as-is

      const listed = (await sessions.listByUserId('u')).map((session) => session.id).sort();
      expect(listed).toEqual([mine, other, platforma].map(digestOf).sort());
      expect((await sessions.get(mine))?.id).toBe(digestOf(mine));
      expect((await sessions.getByUserId('v'))?.id).toBe(digestOf(theirs));
      const validated = await sessions.validate(mine);
      expect(validated.valid && validated.session.id).toBe(digestOf(mine));
      const issued = await sessions.issueSession('w');
      expect(issued.session.id).toBe(digestOf(issued.cookieValue));
      const rotated = (await sessions.rotateSession(issued.cookieValue))!;
      expect(rotated.session.id).toBe(digestOf(rotated.cookieValue));

      expect(await sessions.deleteUserSession('u', mine)).toBe(false); // the cookie value is not the listed id
      expect(await sessions.deleteUserSession('u', digestOf(theirs))).toBe(false); // someone else's
      expect(await sessions.deleteUserSession('u', digestOf(mine))).toBe(true);
      expect(await sessions.deleteUserSession('u', digestOf(platforma))).toBe(true);
      expect(await sessions.getUserIdFromSessionId(mine)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(platforma)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(other)).toBe('u');
      expect(await sessions.deleteById(theirs)).toBe(false);
      expect(await sessions.deleteById(digestOf(theirs))).toBe(true);
      expect(await sessions.getUserIdFromSessionId(theirs)).toBeNull();
    });
  });
});

describe.each(HTTP_PLATFORMS)('Sliding expiry and devices over HTTP on %s', (_platformLabel, platform) => {
  describe.each(TEST_DATABASES)('with %s', (_databaseLabel, database) => {
    let db: OpenDatabase;
    let http: HttpApp;

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        session: { globalGuard: true, ttl: HOUR, rolling: true, absoluteTimeout: 3 * HOUR },
      });
    });
    afterAll(async () => {
      await http.close();
      await db.dispose();
    });
    afterEach(() => http.dataSource.query('DELETE FROM sessions'));

    async function login(userId: string) {
      const response = await request(http.server).post('/auth/login').send({ userId }).expect(200);
      const cookie = cookiePair(response);
      return { cookie, value: cookie.slice('session_id='.length) };
    }

    it('a request with more than half of ttl left writes nothing and sets no cookie', async () => {
      const { cookie, value } = await login('alice');
      await place(http.dataSource, value, -10, 50);
      const { result, queries } = await recordQueries(http.dataSource, () =>
        request(http.server).get('/me').set('Cookie', cookie).expect(200),
      );
      expect(queries).toHaveLength(1);
      expect(setCookies(result)).toEqual([]);
    });

    it('past half of ttl, the guard extends the session and refreshes the cookie from inside the guard', async () => {
      const { cookie, value } = await login('alice');
      await place(http.dataSource, value, -45, 15);
      const response = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
      const row = (await stored(http.dataSource, value))!;
      expect(row.expires.getTime() - row.now.getTime()).toBeGreaterThan(HOUR - MINUTE);
      expect(response.body.expires).toBe(row.expires.toISOString());
      const [line] = setCookies(response);
      expect(line).toMatch(
        new RegExp(
          `^session_id=${value}; Path=/; Max-Age=(\\d+); Expires=${row.expires.toUTCString()}; HttpOnly; SameSite=Lax$`,
        ),
      );
      const maxAge = Number(/Max-Age=(\d+)/.exec(line)![1]);
      expect(maxAge).toBeGreaterThan(3600 - 60);
      expect(maxAge).toBeLessThanOrEqual(3600);
      // Renewed: the next request is a plain read again.
      const next = await recordQueries(http.dataSource, () =>
        request(http.server).get('/me').set('Cookie', cookie).expect(200),
      );
      expect(next.queries).toHaveLength(1);
      expect(setCookies(next.result)).toEqual([]);
    });

    it('renewal near the absolute timeout gives the cookie only the time left before the cap', async () => {
      const { cookie, value } = await login('alice');
      await place(http.dataSource, value, -170, 5);
      const response = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
      const row = (await stored(http.dataSource, value))!;
      expect(row.expires.getTime()).toBe(row.created.getTime() + 3 * HOUR);
      const maxAge = Number(/Max-Age=(\d+)/.exec(setCookies(response)[0])![1]);
      expect(maxAge).toBeGreaterThan(10 * 60 - 60);
      expect(maxAge).toBeLessThanOrEqual(10 * 60);
    });

    it('past the absolute timeout: 401 and the session is gone, rolling or not', async () => {
      const { cookie, value } = await login('alice');
      await place(http.dataSource, value, -181, 40);
      await request(http.server).get('/me').set('Cookie', cookie).expect(401);
      expect(await stored(http.dataSource, value)).toBeUndefined();
    });

    it('lists devices, revokes one by its listed id, refuses others’ ids, and logs out the other devices', async () => {
      const laptop = await login('alice');
      const phone = await login('alice');
      const tablet = await login('alice');
      const bob = await login('bob');
      await place(http.dataSource, laptop.value, -30, 30);
      await place(http.dataSource, phone.value, -20, 40);
      await place(http.dataSource, tablet.value, -10, 50);

      const listing = await request(http.server).get('/devices').set('Cookie', phone.cookie).expect(200);
      expect(listing.body.map((device: { id: string; current: boolean }) => [device.id, device.current])).toEqual([
        [digestOf(tablet.value), false],
        [digestOf(phone.value), true],
        [digestOf(laptop.value), false],
      ]);

      await request(http.server)
        .delete(`/devices/${digestOf(laptop.value)}`)
        .set('Cookie', phone.cookie)
        .expect(200, { deleted: true });
      await request(http.server).get('/me').set('Cookie', laptop.cookie).expect(401);

      await request(http.server)
        .delete(`/devices/${digestOf(bob.value)}`)
        .set('Cookie', phone.cookie)
        .expect(404);
      await request(http.server).get('/me').set('Cookie', bob.cookie).expect(200);

      await request(http.server).delete('/devices/others').set('Cookie', phone.cookie).expect(200, { deleted: 1 });
      await request(http.server).get('/me').set('Cookie', tablet.cookie).expect(401);
      await request(http.server).get('/me').set('Cookie', phone.cookie).expect(200);
      await request(http.server).get('/me').set('Cookie', bob.cookie).expect(200);
    });
  });
});

describe.each(HTTP_PLATFORMS)('Devices over HTTP with hashSessionIds: false on %s', (_platformLabel, platform) => {
  describe.each(TEST_DATABASES)('with %s', (_databaseLabel, database) => {
    let db: OpenDatabase;
    let http: HttpApp;

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        session: { globalGuard: true, hashSessionIds: false },
      });
    });
    afterAll(async () => {
      await http.close();
      await db.dispose();
    });

    async function login(userId: string) {
      const response = await request(http.server).post('/auth/login').send({ userId }).expect(200);
      const cookie = cookiePair(response);
      return { cookie, value: cookie.slice('session_id='.length) };
    }

    it('the device list and @CurrentSession carry no cookie value, and a listed id revokes that device', async () => {
      const laptop = await login('alice');
      const phone = await login('alice');
      const bob = await login('bob');
      const listing = await request(http.server).get('/devices').set('Cookie', phone.cookie).expect(200);
      const me = await request(http.server).get('/me').set('Cookie', phone.cookie).expect(200);
      for (const { value } of [laptop, phone, bob]) {
        expect(listing.text).not.toContain(value);
        expect(me.text).not.toContain(value);
      }
      expect(me.body.sessionId).toBe(digestOf(phone.value));
      expect(
        listing.body.map((device: { id: string; current: boolean }) => [device.id, device.current]).sort(),
      ).toEqual(
        [
          [digestOf(laptop.value), false],
          [digestOf(phone.value), true],
        ].sort(),
      );

      await request(http.server)
        .delete(`/devices/${digestOf(bob.value)}`)
        .set('Cookie', phone.cookie)
        .expect(404);
      await request(http.server)
        .delete(`/devices/${digestOf(laptop.value)}`)
        .set('Cookie', phone.cookie)
        .expect(200, { deleted: true });
      await request(http.server).get('/me').set('Cookie', laptop.cookie).expect(401);
      await request(http.server).get('/me').set('Cookie', phone.cookie).expect(200);
      await request(http.server).get('/me').set('Cookie', bob.cookie).expect(200);
    });
  });
});
