import { type DynamicModule, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken, InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions, Repository } from 'typeorm';
import {
  Session,
  SessionConfigurationError,
  SessionModule,
  SessionService,
  sessionMigrations,
  type SessionModuleForRootOptions,
} from '../src/index.js';
import { typeOrmRoot } from './support/apps.js';
import { digestOf } from './support/http-app.js';
import { POSTGRES_ONLY, TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { describeEachWhere } from './support/requirements.js';

const HOUR = 3_600_000;

describe.each(TEST_DATABASES)('SessionModule on %s', (_label, database) => {
  let db: OpenDatabase;

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(() => db.dispose());

  it('forRootAsync takes its options from a factory with injected config', async () => {
    @Injectable()
    class SessionConfig {
      readonly sessionHours = 3;
    }
    @Module({ providers: [SessionConfig], exports: [SessionConfig] })
    class ConfigModule {}

    const moduleRef = await Test.createTestingModule({
      imports: [
        typeOrmRoot(db.options),
        SessionModule.forRootAsync({
          imports: [ConfigModule],
          inject: [SessionConfig],
          useFactory: (config: SessionConfig) => ({ ttl: config.sessionHours * HOUR, purge: false }),
        }),
      ],
    }).compile();
    const app = await moduleRef.init();
    try {
      const sessions = app.get(SessionService);
      const session = (await sessions.get(await sessions.createSessionForUser('u')))!;
      expect(session.expires.getTime() - session.created.getTime()).toBe(3 * HOUR);
    } finally {
      await app.close();
    }
  });

  it('isGlobal makes SessionService injectable in modules that do not import SessionModule', async () => {
    @Injectable()
    class Consumer {
      constructor(readonly sessions: SessionService) {}
    }
    @Module({ providers: [Consumer] })
    class FeatureModule {}

    const moduleRef = await Test.createTestingModule({
      imports: [typeOrmRoot(db.options), SessionModule.forRoot({ isGlobal: true, purge: false }), FeatureModule],
    }).compile();
    const app = await moduleRef.init();
    try {
      expect(app.get(Consumer).sessions).toBe(app.get(SessionService));
    } finally {
      await app.close();
    }
  });

  it('a missing sessions table stops startup with one error that names the migration', async () => {
    const empty = await database.open();
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...empty.options, entities: [Session] } as DataSourceOptions),
        SessionModule.forRoot({ purge: false }),
      ],
    }).compile();
    let failure: unknown;
    try {
      await moduleRef.init();
    } catch (error) {
      failure = error;
    } finally {
      await moduleRef.close();
      await empty.dispose();
    }
    expect(failure).toBeInstanceOf(SessionConfigurationError);
    expect((failure as Error).message).toMatch(/"sessions" does not exist/);
    expect((failure as Error).message).toMatch(/sessionMigrations/);
    expect((failure as Error).message).toMatch(/migration:run/);
  });

  describe('exports the Session repository to the module that imports it', () => {
    /** A user's provider that injects the repository the module registered. */
    @Injectable()
    class SessionAudit {
      constructor(@InjectRepository(Session) readonly repository: Repository<Session>) {}
    }

    /** Boots `imports` plus `SessionAudit` (in the root module, or in a feature module that does not import SessionModule). */
    async function expectRepositoryInjected(imports: DynamicModule[], auditIn: 'root' | 'feature') {
      @Module({ providers: [SessionAudit] })
      class AuditModule {}
      const moduleRef = await Test.createTestingModule({
        imports: [typeOrmRoot(db.options), ...imports, ...(auditIn === 'feature' ? [AuditModule] : [])],
        providers: auditIn === 'root' ? [SessionAudit] : [],
      }).compile();
      const app = await moduleRef.init();
      try {
        const { repository } = app.get(SessionAudit);
        expect(repository.manager.connection).toBe(app.get(getDataSourceToken()));
        const cookieValue = await app.get(SessionService).createSessionForUser('u');
        expect(await repository.findOneBy({ id: digestOf(cookieValue) })).toMatchObject({ user: 'u' });
        await repository.delete({ id: digestOf(cookieValue) });
      } finally {
        await app.close();
      }
    }

    it('with forRoot', () => expectRepositoryInjected([SessionModule.forRoot({ purge: false })], 'root'));

    it('with forRootAsync', () =>
      expectRepositoryInjected([SessionModule.forRootAsync({ useFactory: () => ({ purge: false }) })], 'root'));

    it('everywhere with isGlobal (forRoot and forRootAsync)', async () => {
      await expectRepositoryInjected([SessionModule.forRoot({ purge: false, isGlobal: true })], 'feature');
      await expectRepositoryInjected(
        [SessionModule.forRootAsync({ useFactory: () => ({ purge: false }), isGlobal: true })],
        'feature',
      );
    });
  });
});

describeEachWhere(POSTGRES_ONLY, 'postgres', 'SessionModule with a named data source on %s', (_label, database) => {
  let main: OpenDatabase;
  let auth: OpenDatabase;

  beforeAll(async () => {
    [main, auth] = await Promise.all([database.open(), database.open()]);
  });
  afterAll(async () => {
    await Promise.all([main.dispose(), auth.dispose()]);
  });

  it('stores sessions on the data source it is given, not the default one', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...main.options } as DataSourceOptions),
        TypeOrmModule.forRoot({
          ...auth.options,
          name: 'auth',
          entities: [Session],
          migrations: sessionMigrations,
          migrationsRun: true,
        } as unknown as DataSourceOptions),
        SessionModule.forRoot({ dataSource: 'auth', purge: false }),
      ],
    }).compile();
    const app = await moduleRef.init();
    try {
      const sessions = app.get(SessionService);
      const cookieValue = await sessions.createSessionForUser('u');
      expect(await sessions.getUserIdFromSessionId(cookieValue)).toBe('u');
      const { Client } = (await import('pg')).default;
      const count = async (url: string) => {
        const client = new Client({ connectionString: url });
        await client.connect();
        try {
          const { rows } = await client.query(`SELECT to_regclass('sessions') IS NOT NULL AS present`);
          return rows[0].present ? (await client.query('SELECT count(*)::int AS n FROM sessions')).rows[0].n : null;
        } finally {
          await client.end();
        }
      };
      expect(await count(auth.url!)).toBe(1);
      expect(await count(main.url!)).toBeNull();
    } finally {
      await app.close();
    }
  });
});

/**
 * `@InjectRepository(Session, 'auth')` with the module bound to a named data source: on
 * PGlite as the app's only data source (typeorm-pglite keeps one instance per module
 * registry), on PostgreSQL beside a default one that has no `sessions` table.
 */
describe.each(TEST_DATABASES)(
  'SessionModule exports the repository of a named data source on %s',
  (_label, database) => {
    let auth: OpenDatabase;
    let main: OpenDatabase | null = null;

    beforeAll(async () => {
      auth = await database.open();
      if (database.kind === 'postgres') main = await database.open();
    });
    afterAll(async () => {
      await auth.dispose();
      await main?.dispose();
    });

    @Injectable()
    class SessionAudit {
      constructor(@InjectRepository(Session, 'auth') readonly repository: Repository<Session>) {}
    }
    @Module({ providers: [SessionAudit] })
    class AuditModule {}

    const sessionModules: [string, () => DynamicModule, 'root' | 'feature'][] = [
      ['forRoot', () => SessionModule.forRoot({ dataSource: 'auth', purge: false }), 'root'],
      [
        'forRootAsync',
        () => SessionModule.forRootAsync({ dataSource: 'auth', useFactory: () => ({ purge: false }) }),
        'root',
      ],
      [
        'forRoot with isGlobal',
        () => SessionModule.forRoot({ dataSource: 'auth', purge: false, isGlobal: true }),
        'feature',
      ],
      [
        'forRootAsync with isGlobal',
        () => SessionModule.forRootAsync({ dataSource: 'auth', useFactory: () => ({ purge: false }), isGlobal: true }),
        'feature',
      ],
    ];
    it.each(sessionModules)('with %s', async (_name, sessionModule, auditIn) => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          ...(main ? [TypeOrmModule.forRoot({ ...main.options } as DataSourceOptions)] : []),
          TypeOrmModule.forRoot({
            ...auth.options,
            name: 'auth',
            entities: [Session],
            migrations: sessionMigrations,
            migrationsRun: true,
          } as unknown as DataSourceOptions),
          sessionModule(),
          ...(auditIn === 'feature' ? [AuditModule] : []),
        ],
        providers: auditIn === 'root' ? [SessionAudit] : [],
      }).compile();
      const app = await moduleRef.init();
      try {
        const { repository } = app.get(SessionAudit);
        expect(repository.manager.connection).toBe(app.get(getDataSourceToken('auth')));
        const cookieValue = await app.get(SessionService).createSessionForUser('u');
        expect(await repository.findOneBy({ id: digestOf(cookieValue) })).toMatchObject({ user: 'u' });
        await repository.delete({ id: digestOf(cookieValue) });
      } finally {
        await app.close();
      }
    });
  },
);

describe('SessionModule misconfiguration fails at startup with the fix in the message', () => {
  // Configuration checks do not depend on the database: run them once, on the fastest one available.
  const [, database] = TEST_DATABASES[TEST_DATABASES.length - 1];
  let db: OpenDatabase;

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(() => db.dispose());

  const cases: [string, SessionModuleForRootOptions, RegExp][] = [
    ['a zero ttl', { ttl: 0 }, /ttl must be a positive whole number of milliseconds/],
    ['a fractional ttl', { ttl: 1.5 }, /ttl must be a positive whole number/],
    ['a cookie name with a space', { cookieName: 'my session' }, /cookieName "my session" is not a valid cookie name/],
    ['a negative absoluteTimeout', { absoluteTimeout: -1 }, /absoluteTimeout must be a positive whole number/],
    ['SameSite=None without Secure', { cookie: { sameSite: 'none', secure: false } }, /requires a Secure cookie/],
    ['a zero purge batch', { purge: { batchSize: 0 } }, /purge.batchSize must be a positive whole number/],
  ];
  it.each(cases)('%s', async (_name, sessionOptions, message) => {
    // The data source is created here so it can be closed: a failed compile cannot be.
    const opened: Promise<DataSource>[] = [];
    const typeOrm = TypeOrmModule.forRootAsync({
      useFactory: () => ({ ...db.options, entities: [Session] }) as DataSourceOptions,
      dataSourceFactory: async (options) => {
        const initialized = new DataSource(options!).initialize();
        opened.push(initialized);
        return initialized;
      },
    });
    let failure: unknown;
    try {
      await Test.createTestingModule({ imports: [typeOrm, SessionModule.forRoot(sessionOptions)] }).compile();
    } catch (error) {
      failure = error;
    } finally {
      await Promise.all(opened.map(async (initialized) => (await initialized).destroy()));
    }
    expect(failure).toBeInstanceOf(SessionConfigurationError);
    expect((failure as Error).message).toMatch(message);
  });
});
