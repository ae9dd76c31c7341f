import { jest } from '@jest/globals';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { SessionPurgeService, SessionService, type SessionPurgeOptions } from '../src/index.js';
import { PURGE_LOCK_NAMESPACE, type PurgeBatch, SessionStore } from '../src/session.store.js';
import { compileSessionModule } from './support/apps.js';
import { POSTGRES_ONLY, TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { describeEachWhere } from './support/requirements.js';
import { fakeDateOnly } from './support/fake-date.js';

/** A schedule that does not fire while the suite runs (00:00:00 on 29 February), so only the test purges. */
const NOT_DURING_TESTS = '0 0 0 29 2 *';

interface PurgeApp {
  app: INestApplicationContext;
  purge: SessionPurgeService;
  store: SessionStore;
  sessions: SessionService;
  dataSource: DataSource;
}

async function bootPurgeApp(db: OpenDatabase, purge: SessionPurgeOptions): Promise<PurgeApp> {
  const moduleRef = await compileSessionModule(db.options, { purge: { cron: NOT_DURING_TESTS, ...purge } });
  const app = await moduleRef.init();
  return {
    app,
    purge: app.get(SessionPurgeService),
    store: app.get(SessionStore),
    sessions: app.get(SessionService),
    dataSource: app.get(getDataSourceToken()),
  };
}

/**
 * Inserts `count` rows that expired 1 s to `count` s ago by the DATABASE clock, in an
 * expiry order unrelated to insertion order (so heap order is not index order).
 */
async function seedExpired(dataSource: DataSource, count: number, prefix = 'expired'): Promise<void> {
  await dataSource.query(
    `INSERT INTO sessions (id, "user", created, expires)
     SELECT $2 || '-' || i, 'user-' || (i % 7), now() - interval '30 days',
            now() - interval '1 second' - ((i * 7919) % $1) * interval '1 second'
     FROM generate_series(1, $1::int) AS i`,
    [count, prefix],
  );
}

/** Inserts `count` rows live for another hour or more by the database clock. */
async function seedLive(dataSource: DataSource, count: number): Promise<void> {
  await dataSource.query(
    `INSERT INTO sessions (id, "user", created, expires)
     SELECT 'live-' || i, 'user-' || (i % 7), now() - interval '1 day', now() + interval '1 hour' + i * interval '1 second'
     FROM generate_series(1, $1::int) AS i`,
    [count],
  );
}

async function countRows(dataSource: DataSource): Promise<{ expired: number; live: number }> {
  const [counts] = await dataSource.query(
    `SELECT count(*) FILTER (WHERE expires < now())::int AS expired, count(*) FILTER (WHERE expires >= now())::int AS live
     FROM sessions`,
  );
  return counts;
}

function spyLogs() {
  return {
    log: jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined),
    error: jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined),
  };
}

describe.each(TEST_DATABASES)('SessionPurgeService on %s', (_label, database) => {
  let db: OpenDatabase;

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db.dispose();
  });

  describe('with batchSize 100', () => {
    let subject: PurgeApp;

    beforeAll(async () => {
      subject = await bootPurgeApp(db, { batchSize: 100 });
    });
    afterAll(() => subject.app.close());
    afterEach(async () => {
      jest.restoreAllMocks();
      jest.useRealTimers();
      await subject.dataSource.query('DELETE FROM sessions');
    });

    it('deletes exactly the expired rows, spares the live ones, and a second run deletes 0', async () => {
      await seedExpired(subject.dataSource, 60);
      await seedLive(subject.dataSource, 40);
      await subject.dataSource.query(
        `INSERT INTO sessions (id, "user", created, expires) VALUES ('expires-soon', 'u', now(), now() + interval '3 seconds')`,
      );
      const batches = jest.spyOn(subject.store, 'purgeExpiredBatch');

      expect(await subject.purge.purgeExpired()).toBe(60);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 41 });
      expect(batches).toHaveBeenCalledTimes(1);

      expect(await subject.purge.purgeExpired()).toBe(0);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 41 });
    });

    it('purges more than batchSize rows in several batches of at most batchSize, and logs count and duration', async () => {
      await seedExpired(subject.dataSource, 250);
      await seedLive(subject.dataSource, 80);
      const batches = jest.spyOn(subject.store, 'purgeExpiredBatch');
      const logs = spyLogs();

      expect(await subject.purge.purgeExpired()).toBe(250);

      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 80 });
      expect(batches).toHaveBeenCalledTimes(3);
      const deletedPerBatch = await Promise.all(
        batches.mock.results.map((result) => result.value as Promise<PurgeBatch>),
      );
      expect(deletedPerBatch.map((batch) => batch.deleted)).toEqual([100, 100, 50]);
      for (const [batchSize] of batches.mock.calls) expect(batchSize).toBe(100);
      expect(logs.log).toHaveBeenCalledWith(
        expect.stringMatching(/^Purged 250 expired sessions in \d+ ms \(3 batches\)$/),
      );
      expect(logs.error).not.toHaveBeenCalled();
    });

    it('stops after the batch that finds fewer than batchSize rows (an exact multiple needs one empty batch)', async () => {
      await seedExpired(subject.dataSource, 200);
      const batches = jest.spyOn(subject.store, 'purgeExpiredBatch');
      expect(await subject.purge.purgeExpired()).toBe(200);
      expect(batches).toHaveBeenCalledTimes(3);
    });

    it('purges rows that share one expires value across batch boundaries', async () => {
      await subject.dataSource.query(
        `INSERT INTO sessions (id, "user", created, expires)
         SELECT 'tie-' || i, 'u', now() - interval '2 days', date_trunc('second', now() - interval '1 day')
         FROM generate_series(1, 230) AS i`,
      );
      expect(await subject.purge.purgeExpired()).toBe(230);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 0 });
    });

    it('a call during a run joins it instead of starting a second one', async () => {
      await seedExpired(subject.dataSource, 250);
      const batches = jest.spyOn(subject.store, 'purgeExpiredBatch');

      const first = subject.purge.purgeExpired();
      const second = subject.purge.purgeExpired();
      expect(second).toBe(first);
      expect(await Promise.all([first, second])).toEqual([250, 250]);
      expect(batches).toHaveBeenCalledTimes(3);

      // Once it settled, the next call is a new run.
      expect(await subject.purge.purgeExpired()).toBe(0);
      expect(batches).toHaveBeenCalledTimes(4);
    });

    it('logs a failed run with the database error, rejects, and the next run succeeds', async () => {
      await seedExpired(subject.dataSource, 120);
      const logs = spyLogs();
      await subject.dataSource.query('ALTER TABLE sessions RENAME TO sessions_away');
      try {
        await expect(subject.purge.purgeExpired()).rejects.toThrow(/sessions/);
      } finally {
        await subject.dataSource.query('ALTER TABLE sessions_away RENAME TO sessions');
      }
      expect(logs.error).toHaveBeenCalledTimes(1);
      expect(logs.error.mock.calls[0][0]).toMatch(
        /^Purge of expired sessions failed after deleting 0 in \d+ ms: QueryFailedError: .*sessions.* \(SQLSTATE 42P01\)$/,
      );

      expect(await subject.purge.purgeExpired()).toBe(120);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 0 });
    });

    it("does not disturb the app's own queries running at the same time", async () => {
      await seedExpired(subject.dataSource, 1500);
      const batches = jest.spyOn(subject.store, 'purgeExpiredBatch');
      const logins = Array.from({ length: 30 }, async (_, i) => {
        const cookieValue = await subject.sessions.createSessionForUser(`concurrent-${i}`);
        return subject.sessions.validate(cookieValue);
      });

      const [deleted, ...validations] = await Promise.all([subject.purge.purgeExpired(), ...logins]);

      expect(deleted).toBe(1500);
      expect(batches.mock.calls.length).toBeGreaterThanOrEqual(16);
      for (const validation of validations) expect(validation.valid).toBe(true);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 30 });
    });
  });

  describe('with maxDurationMs', () => {
    let subject: PurgeApp;

    beforeAll(async () => {
      subject = await bootPurgeApp(db, { batchSize: 50, maxDurationMs: 1000 });
    });
    afterAll(() => subject.app.close());
    afterEach(async () => {
      jest.restoreAllMocks();
      await subject.dataSource.query('DELETE FROM sessions');
    });

    it('starts no batch once maxDurationMs has passed; the next run continues', async () => {
      await seedExpired(subject.dataSource, 400);
      // Every batch "takes" 400 ms: the run is over the limit after its third batch.
      let clock = 0;
      jest.spyOn(performance, 'now').mockImplementation(() => clock);
      const realBatch = subject.store.purgeExpiredBatch.bind(subject.store);
      jest.spyOn(subject.store, 'purgeExpiredBatch').mockImplementation(async (...args) => {
        const batch = await realBatch(...args);
        clock += 400;
        return batch;
      });
      const logs = spyLogs();

      expect(await subject.purge.purgeExpired()).toBe(150);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 250, live: 0 });
      expect(logs.log).toHaveBeenCalledWith(
        expect.stringMatching(/^Purged 150 expired sessions in 1200 ms \(3 batches\); stopped at maxDurationMs/),
      );

      expect(await subject.purge.purgeExpired()).toBe(150);
      expect(await subject.purge.purgeExpired()).toBe(100);
      expect(await countRows(subject.dataSource)).toEqual({ expired: 0, live: 0 });
    });
  });
});

describeEachWhere(POSTGRES_ONLY, 'postgres', 'SessionPurgeService across instances on %s', (_label, database) => {
  let db: OpenDatabase;
  let first: PurgeApp;
  let second: PurgeApp;

  beforeAll(async () => {
    db = await database.open();
    first = await bootPurgeApp(db, { batchSize: 100 });
    second = await bootPurgeApp(db, { batchSize: 100 });
  });
  afterAll(async () => {
    await first?.app.close();
    await second?.app.close();
    await db.dispose();
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    jest.useRealTimers();
    await first.dataSource.query('DELETE FROM sessions');
  });

  it('runs on two application contexts with their own pools', () => {
    expect(first.dataSource).not.toBe(second.dataSource);
    expect(first.purge).not.toBe(second.purge);
  });

  it('two instances purging at once delete every expired row exactly once, without error', async () => {
    const logs = spyLogs();
    for (let round = 0; round < 3; round++) {
      await seedExpired(first.dataSource, 3000, `round-${round}`);
      await seedLive(first.dataSource, 500);

      const [a, b] = await Promise.all([first.purge.purgeExpired(), second.purge.purgeExpired()]);

      expect(a + b).toBe(3000);
      expect(await countRows(first.dataSource)).toEqual({ expired: 0, live: 500 });
      await first.dataSource.query('DELETE FROM sessions');
    }
    expect(logs.error).not.toHaveBeenCalled();
  });

  // Not on PGlite: its now() is read from the process clock, so there the app's clock is the database's.
  it("decides by the database clock, not the app's", async () => {
    await seedExpired(first.dataSource, 30);
    await seedLive(first.dataSource, 20);
    // Only Date is faked: the app believes it is 2100, when every row would be expired.
    fakeDateOnly(new Date('2100-01-01T00:00:00Z'));
    expect(new Date().getUTCFullYear()).toBe(2100);
    expect(await first.purge.purgeExpired()).toBe(30);
    jest.useRealTimers();
    expect(await countRows(first.dataSource)).toEqual({ expired: 0, live: 20 });
  });

  it('an instance that cannot take the purge lock deletes nothing and leaves the work to the holder', async () => {
    await seedExpired(first.dataSource, 250);
    const holder = new pg.Client({ connectionString: db.url! });
    await holder.connect();
    const logs = spyLogs();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock($1, 'sessions'::regclass::oid::int4)`, [PURGE_LOCK_NAMESPACE]);

      expect(await first.purge.purgeExpired()).toBe(0);
      expect(await countRows(first.dataSource)).toEqual({ expired: 250, live: 0 });
      expect(logs.log).toHaveBeenCalledWith(
        expect.stringMatching(
          /^Purged 0 expired sessions in \d+ ms \(1 batch\); another instance holds the purge lock/,
        ),
      );
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    expect(await second.purge.purgeExpired()).toBe(250);
    expect(await countRows(first.dataSource)).toEqual({ expired: 0, live: 0 });
  });
});
