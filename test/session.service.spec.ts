import { createHash } from 'node:crypto';
import type { INestApplicationContext } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';
import {
  DuplicateSessionError,
  InvalidSessionError,
  Session,
  SessionService,
  type SessionModuleForRootOptions,
} from '../src/index.js';
import { compileSessionModule } from './support/apps.js';
import { recordQueries } from './support/http-app.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

describe.each(TEST_DATABASES)('SessionService on %s', (_label, database) => {
  let db: OpenDatabase;
  let app: INestApplicationContext;
  let sessions: SessionService;
  let dataSource: DataSource;

  async function boot(options: SessionModuleForRootOptions = {}) {
    const moduleRef = await compileSessionModule(db.options, options);
    app = await moduleRef.init();
    sessions = app.get(SessionService);
    dataSource = app.get(getDataSourceToken());
  }

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db.dispose();
  });
  afterEach(() => dataSource.query('DELETE FROM sessions'));
  const shutdown = () => app.close();

  /** The rows as stored, bypassing the service. */
  async function storedRows(): Promise<{ id: string; user: string; created: Date; expires: Date }[]> {
    return dataSource.query('SELECT id, "user", created, expires FROM sessions ORDER BY created');
  }

  describe('with hashed ids (default)', () => {
    beforeAll(() => boot());
    afterAll(shutdown);

    it('createSessionForUser returns a 256-bit base64url value and stores only its SHA-256 digest', async () => {
      const cookieValue = await sessions.createSessionForUser('user-1');
      expect(cookieValue).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(cookieValue, 'base64url')).toHaveLength(32);
      const [row] = await storedRows();
      expect(row.id).toBe(createHash('sha256').update(cookieValue).digest('hex'));
      expect(row.id).not.toContain(cookieValue);
      expect(row.user).toBe('user-1');
      const session = await sessions.get(cookieValue);
      expect(session).toBeInstanceOf(Session);
      expect(session!.id).toBe(row.id);
    });

    it('gives sessions the default 100-day lifetime', async () => {
      const cookieValue = await sessions.createSessionForUser('user-1');
      const session = (await sessions.get(cookieValue))!;
      expect(session.expires.getTime() - session.created.getTime()).toBe(100 * DAY);
      expect(Math.abs(session.created.getTime() - Date.now())).toBeLessThan(60_000);
      expect(session.isExpired()).toBe(false);
    });

    it('generates a different value every time', async () => {
      const values = new Set<string>();
      for (let i = 0; i < 20; i++) values.add(await sessions.createSessionForUser('user-1'));
      expect(values.size).toBe(20);
    });

    it('the digest stored in the table does not open the session', async () => {
      const cookieValue = await sessions.createSessionForUser('user-1');
      const [row] = await storedRows();
      expect(await sessions.getUserIdFromSessionId(row.id)).toBeNull();
      expect(await sessions.get(row.id)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(cookieValue)).toBe('user-1');
    });

    it('create stores a caller-chosen session, hashed, with its own expiry', async () => {
      const created = new Date(Date.now() - HOUR);
      const expires = new Date(Date.now() + HOUR);
      await sessions.create({ id: 'my-chosen-id', user: 'user-2', created, expires });
      const session = (await sessions.get('my-chosen-id'))!;
      expect(session.user).toBe('user-2');
      expect(session.created.getTime()).toBe(created.getTime());
      expect(session.expires.getTime()).toBe(expires.getTime());
      const [row] = await storedRows();
      expect(row.id).toBe(createHash('sha256').update('my-chosen-id').digest('hex'));
    });

    it('get returns expired rows too; getUserIdFromSessionId does not', async () => {
      await sessions.create({
        id: 'expired-one',
        user: 'user-3',
        created: new Date(Date.now() - 2 * HOUR),
        expires: new Date(Date.now() - HOUR),
      });
      const session = await sessions.get('expired-one');
      expect(session?.isExpired()).toBe(true);
      expect(await sessions.getUserIdFromSessionId('expired-one')).toBeNull();
    });

    it('get and getUserIdFromSessionId return null for unknown values', async () => {
      expect(await sessions.get('nope')).toBeNull();
      expect(await sessions.getUserIdFromSessionId('nope')).toBeNull();
    });

    it('getByUserId returns the newest live session of the user', async () => {
      const now = Date.now();
      await sessions.create({ id: 'old', user: 'u', created: new Date(now - 3 * HOUR), expires: new Date(now + HOUR) });
      await sessions.create({ id: 'new', user: 'u', created: new Date(now - HOUR), expires: new Date(now + HOUR) });
      await sessions.create({
        id: 'newest-but-expired',
        user: 'u',
        created: new Date(now - 60_000),
        expires: new Date(now - 1000),
      });
      await sessions.create({ id: 'other-user', user: 'v', created: new Date(now), expires: new Date(now + HOUR) });
      const newest = await sessions.getByUserId('u');
      expect(newest?.id).toBe(createHash('sha256').update('new').digest('hex'));
      expect(await sessions.getByUserId('nobody')).toBeNull();
    });

    it('deleteSession deletes one session and is idempotent', async () => {
      const a = await sessions.createSessionForUser('u');
      const b = await sessions.createSessionForUser('u');
      await sessions.deleteSession(a);
      await sessions.deleteSession(a);
      expect(await sessions.get(a)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(b)).toBe('u');
    });

    it('deleteSessionsByUserId deletes every session of that user only and counts them', async () => {
      const mine = [await sessions.createSessionForUser('u'), await sessions.createSessionForUser('u')];
      const theirs = await sessions.createSessionForUser('v');
      expect(await sessions.deleteSessionsByUserId('u')).toBe(2);
      expect(await sessions.deleteSessionsByUserId('u')).toBe(0);
      for (const value of mine) expect(await sessions.get(value)).toBeNull();
      expect(await sessions.getUserIdFromSessionId(theirs)).toBe('v');
    });

    it('rejects invalid sessions with InvalidSessionError and writes nothing', async () => {
      const created = new Date();
      const later = new Date(created.getTime() + HOUR);
      const cases = [
        { id: 'a', user: '', created, expires: later },
        { id: 'a', user: 'u', created: new Date('nope'), expires: later },
        { id: 'a', user: 'u', created, expires: new Date(Number.NaN) },
        { id: 'a', user: 'u', created, expires: created },
        { id: 'a', user: 'u', created: later, expires: created },
        { id: '', user: 'u', created, expires: later },
        { id: 'x'.repeat(1025), user: 'u', created, expires: later },
        { id: 'has space', user: 'u', created, expires: later },
        { id: 'a', user: 'u'.repeat(256), created, expires: later },
        { id: 'a', user: 42 as unknown as string, created, expires: later },
      ];
      for (const session of cases) {
        await expect(sessions.create(session)).rejects.toBeInstanceOf(InvalidSessionError);
      }
      await expect(sessions.createSessionForUser('')).rejects.toBeInstanceOf(InvalidSessionError);
      expect(await storedRows()).toHaveLength(0);
    });

    it('a duplicate id is an error, never an overwrite', async () => {
      const created = new Date();
      await sessions.create({ id: 'dup', user: 'first', created, expires: new Date(created.getTime() + HOUR) });
      await expect(
        sessions.create({ id: 'dup', user: 'second', created, expires: new Date(created.getTime() + 2 * HOUR) }),
      ).rejects.toBeInstanceOf(DuplicateSessionError);
      expect((await sessions.get('dup'))!.user).toBe('first');
      expect(await storedRows()).toHaveLength(1);
    });

    it('answers bad lookups with null without querying the database', async () => {
      const queries: string[] = [];
      const original = dataSource.query.bind(dataSource);
      dataSource.query = ((sql: string, params?: unknown[]) => {
        queries.push(sql);
        return original(sql, params);
      }) as DataSource['query'];
      try {
        for (const bad of [
          '',
          'x'.repeat(1025),
          'a b',
          'semi;colon',
          'quo"te',
          'nul\0',
          'é',
          undefined,
          null,
          42,
          {},
        ]) {
          expect(await sessions.get(bad as string)).toBeNull();
          expect(await sessions.getUserIdFromSessionId(bad as string)).toBeNull();
          await sessions.deleteSession(bad as string);
        }
      } finally {
        dataSource.query = original;
      }
      expect(queries).toEqual([]);
    });

    it('accepts the longest allowed value', async () => {
      const longest = 'k'.repeat(1024);
      const created = new Date();
      await sessions.create({ id: longest, user: 'u', created, expires: new Date(created.getTime() + HOUR) });
      expect(await sessions.getUserIdFromSessionId(longest)).toBe('u');
    });
  });

  describe('with hashSessionIds: false', () => {
    beforeAll(() => boot({ hashSessionIds: false }));
    afterAll(shutdown);

    it('stores cookie values as-is (Platforma-compatible)', async () => {
      const cookieValue = await sessions.createSessionForUser('user-1');
      const [row] = await storedRows();
      expect(row.id).toBe(cookieValue);
      expect(await sessions.getUserIdFromSessionId(cookieValue)).toBe('user-1');
    });

    it('create takes ids up to the 255 characters the id column holds, and rejects longer ones with InvalidSessionError', async () => {
      const created = new Date();
      const expires = new Date(created.getTime() + HOUR);
      for (const id of ['k'.repeat(256), 'k'.repeat(1024)]) {
        await expect(sessions.create({ id, user: 'u', created, expires })).rejects.toBeInstanceOf(InvalidSessionError);
      }
      expect(await storedRows()).toHaveLength(0);
      const longest = 'k'.repeat(255);
      await sessions.create({ id: longest, user: 'u', created, expires });
      expect(await sessions.getUserIdFromSessionId(longest)).toBe('u');
    });

    it('answers a value longer than the id column as unknown, without a query', async () => {
      await sessions.create({
        id: 'k'.repeat(255),
        user: 'u',
        created: new Date(),
        expires: new Date(Date.now() + HOUR),
      });
      for (const tooLong of ['k'.repeat(256), 'k'.repeat(1024)]) {
        const { result, queries } = await recordQueries(dataSource, async () => [
          await sessions.get(tooLong),
          await sessions.getUserIdFromSessionId(tooLong),
          await sessions.validate(tooLong),
          await sessions.rotate(tooLong),
          await sessions.deleteSession(tooLong),
        ]);
        expect(result).toEqual([null, null, { valid: false }, null, undefined]);
        expect(queries).toEqual([]);
      }
      expect(await storedRows()).toHaveLength(1);
    });

    it('reads a session a Platforma app wrote (UUID id)', async () => {
      const id = '3f0c2a7e-8d6b-4b6e-9a53-1f2b0c9d8e7a';
      await dataSource.query(
        `INSERT INTO sessions (id, "user", created, expires) VALUES ($1, 'go-user', now(), now() + interval '1 day')`,
        [id],
      );
      expect(await sessions.getUserIdFromSessionId(id)).toBe('go-user');
    });
  });

  describe('with a custom ttl', () => {
    beforeAll(() => boot({ ttl: 2 * HOUR }));
    afterAll(shutdown);

    it('expires sessions after ttl', async () => {
      const cookieValue = await sessions.createSessionForUser('u');
      const session = (await sessions.get(cookieValue))!;
      expect(session.expires.getTime() - session.created.getTime()).toBe(2 * HOUR);
    });
  });
});
