import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, Logger as TypeOrmLogger } from 'typeorm';
import { SessionModule, SessionService } from '../src/index.js';
import { typeOrmRoot } from './support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { CapturingLogger } from './support/http-app.js';

/**
 * The guard's lookup (`SessionService.validate`) skips TypeORM's query runner and
 * asks the driver's pool directly, but only when TypeORM would have done nothing
 * anyone could observe (found costly by `npm run bench`). These tests pin both sides,
 * and the prepared statement it uses on `pg` with its fallback when the server
 * refuses it.
 */
describe.each(TEST_DATABASES)('SessionStore lookup path on %s', (_label, database) => {
  let db: OpenDatabase;
  let app: INestApplicationContext;
  let sessions: SessionService;
  let dataSource: DataSource;
  let logs: CapturingLogger;

  async function boot(typeormExtra: Record<string, unknown> = {}) {
    logs = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [typeOrmRoot(db.options, typeormExtra), SessionModule.forRoot({ purge: false })],
    })
      .setLogger(logs)
      .compile();
    app = await moduleRef.init();
    sessions = app.get(SessionService);
    dataSource = app.get(getDataSourceToken());
  }

  /**
   * Counts TypeORM query runners created and statements sent to the driver's pool while
   * `work` runs; a statement sent by name (prepared) is listed as `name: text`.
   */
  async function countPaths(work: () => Promise<unknown>): Promise<{ queryRunners: number; poolQueries: string[] }> {
    const pool = (dataSource.driver as unknown as { master: { query: (...args: unknown[]) => unknown } }).master;
    const originalPoolQuery = pool.query;
    const originalCreateQueryRunner = dataSource.createQueryRunner;
    const counts = { queryRunners: 0, poolQueries: [] as string[] };
    pool.query = function (this: unknown, ...args: unknown[]) {
      const query = args[0] as string | { name: string; text: string };
      counts.poolQueries.push(typeof query === 'string' ? query : `${query.name}: ${query.text}`);
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

  const prepared = /^nts_lookup_[0-9a-f]{16}: SELECT .* FROM "sessions" WHERE id = \$1$/;
  const unnamed = /^SELECT .* FROM "sessions" WHERE id = \$1$/;
  const refusals = () => logs.lines.filter((line) => line.message.includes('refused the prepared session lookup'));

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
      expect(validation).toMatchObject({ valid: true, renewedExpires: null, session: { user: 'alice' } });
      // PGlite has no named statements; on pg the lookup is prepared (the first one after boot).
      expect(counts.poolQueries).toEqual([expect.stringMatching(database.kind === 'pglite' ? unnamed : prepared)]);
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

  if (database.kind === 'postgres' && database.pooler === undefined) {
    describe('prepared on pg (a pool of one connection, so the test sees its statements)', () => {
      beforeEach(() => boot({ extra: { max: 1 } }));
      afterEach(() => app.close());

      it('parses the lookup once on the connection, then only executes it', async () => {
        const cookieValue = await sessions.createSessionForUser('frank');
        for (let i = 0; i < 3; i++) expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true });
        const statements: { name: string; statement: string; executions: number }[] = await dataSource.query(
          `SELECT name, statement, (generic_plans + custom_plans)::int AS executions FROM pg_prepared_statements`,
        );
        expect(statements).toEqual([
          { name: expect.stringMatching(/^nts_lookup_/), statement: expect.stringMatching(unnamed), executions: 3 },
        ]);
      });

      it('falls back to unnamed lookups for good, with one warning, when the server loses the statement', async () => {
        const cookieValue = await sessions.createSessionForUser('grace');
        expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true });
        await dataSource.query('DEALLOCATE ALL');
        // pg still believes the statement is there and only binds it: SQLSTATE 26000.
        const first = await countPaths(async () =>
          expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true, session: { user: 'grace' } }),
        );
        expect(first.poolQueries).toEqual([expect.stringMatching(prepared), expect.stringMatching(unnamed)]);
        const later = await countPaths(async () =>
          expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true }),
        );
        expect(later.poolQueries).toEqual([expect.stringMatching(unnamed)]);
        expect(refusals()).toEqual([{ level: 'warn', message: expect.stringContaining('SQLSTATE 26000') }]);
        expect(refusals()[0].message).not.toContain(cookieValue);
      });

      it('keeps answering when the table is altered under it (cached plan must not change result type)', async () => {
        const cookieValue = await sessions.createSessionForUser('heidi');
        expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true });
        await dataSource.query('ALTER TABLE sessions ALTER COLUMN "user" TYPE text');
        try {
          expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true, session: { user: 'heidi' } });
          expect(refusals()).toEqual([{ level: 'warn', message: expect.stringContaining('SQLSTATE 0A000') }]);
        } finally {
          await dataSource.query('ALTER TABLE sessions ALTER COLUMN "user" TYPE varchar(255)');
        }
      });

      it('still fails (503 upstream) on any other database error', async () => {
        const cookieValue = await sessions.createSessionForUser('ivan');
        await dataSource.query('ALTER TABLE sessions RENAME TO sessions_away');
        try {
          await expect(sessions.validate(cookieValue)).rejects.toMatchObject({ code: '42P01' });
          expect(refusals()).toEqual([]);
        } finally {
          await dataSource.query('ALTER TABLE sessions_away RENAME TO sessions');
        }
      });
    });
  }

  if (database.pooler === 'pgbouncer') {
    // The harness sets max_prepared_statements = 0 on PgBouncer 1.21+ (test/support/pgbouncer.ts),
    // so a newer PgBouncer refuses the named lookup as 1.18 does, instead of carrying it.
    describe('behind PgBouncer in transaction mode (no prepared statements across server connections)', () => {
      beforeAll(() => boot({ extra: { max: 1 } }));
      afterAll(() => app.close());

      it('answers right when lookups land on server connections that lack the statement or already have it', async () => {
        const cookieValue = await sessions.createSessionForUser('judy');
        const holder = new pg.Client({ connectionString: db.url! });
        await holder.connect();
        const counts = await countPaths(async () => {
          expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true, session: { user: 'judy' } });
          // PgBouncer hands out the server connection released last: this transaction takes
          // the one the lookup just ran on, so the next lookup runs on another.
          await holder.query('BEGIN');
          try {
            expect(await sessions.validate(cookieValue)).toMatchObject({ valid: true, session: { user: 'judy' } });
          } finally {
            await holder.query('COMMIT');
            await holder.end();
          }
        });
        // Refused once, whichever way comes first (42P05: an earlier client prepared it on that
        // server connection; 26000: this one lacks it), retried unnamed, unnamed from then on.
        const kinds = counts.poolQueries.map((query) =>
          prepared.test(query) ? 'named' : unnamed.test(query) && 'unnamed',
        );
        expect(kinds.join(' ')).toMatch(/^(named )+unnamed( unnamed)*$/);
        expect(refusals()).toEqual([{ level: 'warn', message: expect.stringMatching(/SQLSTATE (26000|42P05)/) }]);
        expect(refusals()[0].message).toContain('max_prepared_statements');
      });
    });
  }
});
