import type { INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, Logger as TypeOrmLogger } from 'typeorm';
import { SessionModule, SessionService } from '../src/index.js';
import { typeOrmRoot } from './support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';

/**
 * The guard's lookup (`SessionService.validate`) skips TypeORM's query runner and
 * asks the driver's pool directly, but only when TypeORM would have done nothing
 * anyone could observe (found costly by `npm run bench`). These tests pin both sides.
 */
describe.each(TEST_DATABASES)('SessionStore lookup path on %s', (_label, database) => {
  let db: OpenDatabase;
  let app: INestApplicationContext;
  let sessions: SessionService;
  let dataSource: DataSource;

  async function boot(typeormExtra: Record<string, unknown> = {}) {
    const moduleRef = await Test.createTestingModule({
      imports: [typeOrmRoot(db.options, typeormExtra), SessionModule.forRoot({ purge: false })],
    }).compile();
    app = await moduleRef.init();
    sessions = app.get(SessionService);
    dataSource = app.get(getDataSourceToken());
  }

  /** Counts TypeORM query runners created and statements sent to the driver's pool while `work` runs. */
  async function countPaths(work: () => Promise<unknown>): Promise<{ queryRunners: number; poolQueries: string[] }> {
    const pool = (dataSource.driver as unknown as { master: { query: (...args: unknown[]) => unknown } }).master;
    const originalPoolQuery = pool.query;
    const originalCreateQueryRunner = dataSource.createQueryRunner;
    const counts = { queryRunners: 0, poolQueries: [] as string[] };
    pool.query = function (this: unknown, ...args: unknown[]) {
      counts.poolQueries.push(String(args[0]));
      return originalPoolQuery.apply(this, args);
    };
    dataSource.createQueryRunner = function (this: DataSource, ...args: Parameters<DataSource['createQueryRunner']>) {
      counts.queryRunners++;
      return originalCreateQueryRunner.apply(this, args);
    };
    try {
      await work();
    } finally {
      pool.query = originalPoolQuery;
      dataSource.createQueryRunner = originalCreateQueryRunner;
    }
    return counts;
  }

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db.dispose();
  });

  describe('with TypeORM quiet (no logging, no query subscribers)', () => {
    beforeAll(() => boot());
    afterAll(() => app.close());

    it('validates with one statement on the driver pool and no query runner', async () => {
      const cookieValue = await sessions.createSessionForUser('alice');
      let validation: Awaited<ReturnType<SessionService['validate']>> | undefined;
      const counts = await countPaths(async () => {
        validation = await sessions.validate(cookieValue);
      });
      expect(counts.queryRunners).toBe(0);
      expect(counts.poolQueries).toHaveLength(1);
      expect(counts.poolQueries[0]).toMatch(/^SELECT .* FROM "sessions" WHERE id = \$1$/);
      expect(validation).toMatchObject({ valid: true, renewedExpires: null, session: { user: 'alice' } });
    });

    it('returns the stored row to the millisecond (times travel as epoch milliseconds)', async () => {
      const cookieValue = await sessions.createSessionForUser('erin');
      // Sub-millisecond digits must be cut, never rounded up into the next millisecond.
      await dataSource.query(
        `UPDATE sessions SET created = date_trunc('second', now()) - interval '1 day' + interval '0.123999 second',
                             expires = '2999-01-02 03:04:05.678999+00' WHERE "user" = 'erin'`,
      );
      const stored = await sessions.get(cookieValue);
      const validation = await sessions.validate(cookieValue);
      expect(validation.valid).toBe(true);
      if (!validation.valid) return;
      expect(validation.session.id).toBe(stored!.id);
      expect(validation.session.user).toBe('erin');
      expect(validation.session.created.getTime() % 1000).toBe(123);
      expect(validation.session.created.getTime()).toBe(stored!.created.getTime());
      expect(validation.session.expires.toISOString()).toBe('2999-01-02T03:04:05.678Z');
      expect(validation.session.expires.getTime()).toBe(stored!.expires.getTime());
    });

    it('still decides expiry by the database clock and deletes the expired row', async () => {
      const cookieValue = await sessions.createSessionForUser('bob');
      await dataSource.query(`UPDATE sessions SET expires = now() - interval '1 second' WHERE "user" = 'bob'`);
      expect(await sessions.validate(cookieValue)).toEqual({ valid: false });
      expect(await dataSource.query(`SELECT id FROM sessions WHERE "user" = 'bob'`)).toEqual([]);
    });

    it('goes through DataSource.query once someone wraps it (an APM agent, a test spy)', async () => {
      const cookieValue = await sessions.createSessionForUser('carol');
      const seen: string[] = [];
      const original = dataSource.query;
      dataSource.query = function (this: DataSource, sql: string, ...rest: unknown[]) {
        seen.push(sql);
        return (original as (...args: unknown[]) => Promise<unknown>).call(this, sql, ...rest);
      } as DataSource['query'];
      try {
        expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true, session: { user: 'carol' } });
      } finally {
        dataSource.query = original;
      }
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatch(/WHERE id = \$1$/);
    });
  });

  describe('with a TypeORM logger', () => {
    const logged: string[] = [];
    const logger: TypeOrmLogger = {
      logQuery: (query) => void logged.push(query),
      logQueryError: () => undefined,
      logQuerySlow: () => undefined,
      logSchemaBuild: () => undefined,
      logMigration: () => undefined,
      log: () => undefined,
    };
    beforeAll(() => boot({ logger }));
    afterAll(() => app.close());

    it('the logger sees the lookup: TypeORM runs it', async () => {
      const cookieValue = await sessions.createSessionForUser('dave');
      logged.length = 0;
      const counts = await countPaths(() => sessions.validate(cookieValue));
      expect(counts.queryRunners).toBe(1);
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatch(/^SELECT .* FROM "sessions" WHERE id = \$1$/);
    });
  });
});
